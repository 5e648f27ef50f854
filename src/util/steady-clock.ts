// Deadlines and durations are measured on a clock that never steps. Date.now() follows the wall
// clock, which NTP or chrony may step by minutes or hours (at boot, after a VM resumes, by hand):
// a request deadline of Date.now() + 5 s would then wait for an hour after a step back, or expire
// at once after a step forward. steadyNow() reads like Date.now() (milliseconds since the epoch, as
// the wall clock read when the process started) but advances with the monotonic clock only, so it
// still serves where a deadline is also written into a log. What must agree with other machines (a
// Kubernetes Lease's renewTime, an HTTP Date header, a certificate's validity) keeps Date.now().

/** Milliseconds on the process's monotonic clock, offset to the epoch at start; never steps. */
export const steadyNow = (): number => performance.timeOrigin + performance.now();
