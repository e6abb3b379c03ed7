/** Time as routing and health checks see it; injected so tests move it by hand instead of sleeping. */
export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  setTimeout(fn: () => void, ms: number): Timer;
  clearTimeout(timer: Timer): void;
}

export interface Timer {
  unref?(): unknown;
}

export function createSystemClock(): Clock {
  return {
    now: () => Date.now(),
    setTimeout: (fn, ms) => setTimeout(fn, ms),
    clearTimeout: (t) => clearTimeout(t as NodeJS.Timeout),
  };
}

/**
 * Timers on the monotonic clock (performance.now()): for deadlines that must not jump when the
 * wall clock is stepped (NTP, a VM resumed).
 */
export function createMonotonicClock(): Clock {
  return { ...createSystemClock(), now: () => performance.now() };
}
