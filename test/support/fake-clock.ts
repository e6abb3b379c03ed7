import type { Clock, Timer } from '../../src/util/clock.js';

/** A clock that moves only when the test says so; due timers run inside advance(). */
export class FakeClock implements Clock {
  #now: number;
  #timers: Array<{ at: number; fn: () => void; id: number }> = [];
  #seq = 0;

  constructor(start = Date.UTC(2026, 0, 1)) {
    this.#now = start;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): Timer {
    const t = { at: this.#now + ms, fn, id: ++this.#seq };
    this.#timers.push(t);
    return t as unknown as Timer;
  }

  clearTimeout(timer: Timer): void {
    this.#timers = this.#timers.filter((t) => t !== (timer as unknown));
  }

  get pending(): number {
    return this.#timers.length;
  }

  /** Moves time forward by `ms`, running each timer that falls due, in order. */
  advance(ms: number): void {
    const end = this.#now + ms;
    for (;;) {
      this.#timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.#timers[0];
      if (next === undefined || next.at > end) break;
      this.#timers.shift();
      this.#now = next.at;
      next.fn();
    }
    this.#now = end;
  }
}
