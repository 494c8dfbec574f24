#ifndef LAVA_CURL_SHIM_H
#define LAVA_CURL_SHIM_H

/* Typed wrappers for libcurl's variadic calls (curl_easy_setopt, curl_easy_getinfo), which Swift
 * cannot call. Handles are void * and options/codes plain ints on purpose: this header does not
 * include <curl/curl.h>, so the CCurlShim module never re-exports curl's declarations next to the
 * CCurl module's (Swift code passes `CURLOPT_X.rawValue` and compares with `CURLE_X.rawValue`). */

#include <stddef.h>

/* CURL_WRITEFUNC_PAUSE, checked against curl.h in curl_shim.c. */
#define LAVA_CURL_WRITEFUNC_PAUSE ((size_t)0x10000001)

/* curl_global_init(CURL_GLOBAL_DEFAULT), run exactly once per process whoever calls first
 * (pthread_once); every call returns the CURLcode of that one run. */
int lava_curl_global_init_once(void);

int lava_curl_setopt_long(void *easy, int option, long value);
int lava_curl_setopt_off(void *easy, int option, long long value);
int lava_curl_setopt_ptr(void *easy, int option, void *value);
int lava_curl_setopt_str(void *easy, int option, const char *value);

/* The shape of CURLOPT_WRITEFUNCTION and CURLOPT_HEADERFUNCTION. */
typedef size_t (*lava_curl_data_callback)(char *data, size_t size, size_t count, void *context);

/* Sets the function and its context (CURLOPT_WRITEDATA / CURLOPT_HEADERDATA) together. */
int lava_curl_setopt_write_callback(void *easy, lava_curl_data_callback callback, void *context);
int lava_curl_setopt_header_callback(void *easy, lava_curl_data_callback callback, void *context);

int lava_curl_getinfo_long(void *easy, int info, long *value);
int lava_curl_getinfo_off(void *easy, int info, long long *value);

/* curl_easy_pause(easy, CURLPAUSE_CONT): CURLPAUSE_CONT is a macro Swift does not import. */
int lava_curl_unpause(void *easy);

#endif
