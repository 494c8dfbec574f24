/* The static Swift runtime calls hypotf, which glibc 2.35 re-versioned (hypot too). Defining it
 * here binds the call inside the binary, so a release built on a newer glibc still runs on
 * glibc 2.34 (Amazon Linux 2023). Squares of floats cannot overflow a double, so computing in
 * double and rounding once is exact enough and needs no libm symbol beyond sqrt. */
double sqrt(double x);

float hypotf(float x, float y) {
    /* C says an infinite side wins even over a NaN. */
    if (__builtin_isinf(x) || __builtin_isinf(y)) return __builtin_inff();
    double dx = (double)x, dy = (double)y;
    return (float)sqrt(dx * dx + dy * dy);
}
