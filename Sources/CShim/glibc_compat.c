/* The static Swift runtime calls hypotf, which glibc 2.35 re-versioned. Defining it here binds
 * the call inside the binary, so a release built on a newer glibc still runs on glibc 2.34
 * (Amazon Linux 2023). Computing in double and rounding once is at least as accurate. */
double hypot(double x, double y);

float hypotf(float x, float y) {
    return (float)hypot((double)x, (double)y);
}
