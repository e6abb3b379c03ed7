/**
 * A value now, or a promise of it. Steps of the request path that usually have their answer at
 * hand (a pin in the near cache, a free connection slot) return it at once: each `await` is a turn
 * of the microtask queue, and a small GET went through about ten of them.
 */
export type Awaitable<T> = T | Promise<T>;

/** `f` of the value: at once when it is here, once it is when it is a promise. */
export function andThen<T, U>(v: Awaitable<T>, f: (value: T) => Awaitable<U>): Awaitable<U> {
  return v instanceof Promise ? v.then(f) : f(v);
}
