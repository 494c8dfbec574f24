#include "curl_shim.h"

#include <curl/curl.h>
#include <pthread.h>

_Static_assert(LAVA_CURL_WRITEFUNC_PAUSE == CURL_WRITEFUNC_PAUSE, "CURL_WRITEFUNC_PAUSE changed");
_Static_assert(sizeof(curl_off_t) <= sizeof(long long), "curl_off_t wider than long long");

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_result = CURLE_FAILED_INIT;

static void global_init(void) {
    global_result = curl_global_init(CURL_GLOBAL_DEFAULT);
}

int lava_curl_global_init_once(void) {
    pthread_once(&global_once, global_init);
    return (int)global_result;
}

int lava_curl_setopt_long(void *easy, int option, long value) {
    return (int)curl_easy_setopt((CURL *)easy, (CURLoption)option, value);
}

int lava_curl_setopt_off(void *easy, int option, long long value) {
    return (int)curl_easy_setopt((CURL *)easy, (CURLoption)option, (curl_off_t)value);
}

int lava_curl_setopt_ptr(void *easy, int option, void *value) {
    return (int)curl_easy_setopt((CURL *)easy, (CURLoption)option, value);
}

int lava_curl_setopt_str(void *easy, int option, const char *value) {
    return (int)curl_easy_setopt((CURL *)easy, (CURLoption)option, value);
}

int lava_curl_setopt_write_callback(void *easy, lava_curl_data_callback callback, void *context) {
    CURLcode result = curl_easy_setopt((CURL *)easy, CURLOPT_WRITEFUNCTION, callback);
    if (result != CURLE_OK) return (int)result;
    return (int)curl_easy_setopt((CURL *)easy, CURLOPT_WRITEDATA, context);
}

int lava_curl_setopt_header_callback(void *easy, lava_curl_data_callback callback, void *context) {
    CURLcode result = curl_easy_setopt((CURL *)easy, CURLOPT_HEADERFUNCTION, callback);
    if (result != CURLE_OK) return (int)result;
    return (int)curl_easy_setopt((CURL *)easy, CURLOPT_HEADERDATA, context);
}

int lava_curl_getinfo_long(void *easy, int info, long *value) {
    return (int)curl_easy_getinfo((CURL *)easy, (CURLINFO)info, value);
}

int lava_curl_getinfo_off(void *easy, int info, long long *value) {
    curl_off_t result = 0;
    CURLcode code = curl_easy_getinfo((CURL *)easy, (CURLINFO)info, &result);
    *value = (long long)result;
    return (int)code;
}

int lava_curl_unpause(void *easy) {
    return (int)curl_easy_pause((CURL *)easy, CURLPAUSE_CONT);
}
