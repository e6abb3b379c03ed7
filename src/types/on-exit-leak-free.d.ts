// on-exit-leak-free (pino's own exit hook) ships no types: the part harbor-lb uses.
declare module 'on-exit-leak-free' {
  /** Calls `fn` on process 'exit' while `obj` is alive; holds `obj` only weakly. */
  export function register<T extends object>(obj: T, fn: (obj: T, event: 'exit' | 'beforeExit') => void): void;
  export function unregister(obj: object): void;
}
