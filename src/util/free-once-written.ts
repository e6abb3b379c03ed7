import type { Socket } from 'node:net';

/**
 * On a buffer handed to a node's socket: free its memory once the socket has written it, and call
 * this with the bytes freed.
 */
const FREE_ONCE_WRITTEN = Symbol('harbor-lb.freeOnceWritten');

type Marked = Buffer & { [FREE_ONCE_WRITTEN]?: (bytes: number) => void };

/** Whether this runtime can free an ArrayBuffer's memory on demand (ArrayBuffer.prototype.transfer, Node ≥ 21). */
const CAN_FREE = typeof (ArrayBuffer.prototype as { transfer?: unknown }).transfer === 'function';

/**
 * Marks an upload's body piece to be freed as soon as a node's socket has written it, instead of
 * at the next young-generation collection. node:http copies each read of a request body into a
 * buffer of its own (a malloc of up to 64 KiB), which only a collection frees: for uploads that
 * meant one collection asked for per 4 MiB (util/buffer-reclaimer.ts), about 0.1 s of CPU per
 * GiB pushed. Only a buffer that is the whole of its memory is marked (never a slice of a larger
 * one, such as the pool Buffer.allocUnsafe() carves small buffers from). The caller promises that
 * nothing reads the piece once it is written. Returns whether it was marked.
 */
export function freeOnceWritten(chunk: Buffer, onFreed: (bytes: number) => void): boolean {
  if (!CAN_FREE || chunk.byteOffset !== 0 || chunk.buffer.byteLength !== chunk.byteLength || chunk.byteLength === 0) return false;
  (chunk as Marked)[FREE_ONCE_WRITTEN] = onFreed;
  return true;
}

/**
 * `socket`, whose writes of marked buffers free them once written: when the write's callback
 * comes, the kernel (or TLS) has taken every byte, and neither libuv nor the stream holds the
 * memory any longer. A write that fails frees it too: its callback comes once libuv let go.
 */
export function freeingWrites<S extends Socket>(socket: S): S {
  const write = socket.write;
  socket.write = function (this: S, chunk: unknown, encodingOrCb?: unknown, cb?: unknown): boolean {
    const onFreed = (chunk as Marked | undefined)?.[FREE_ONCE_WRITTEN];
    if (onFreed === undefined) return (write as (...a: unknown[]) => boolean).call(this, chunk, encodingOrCb, cb);
    const done = (typeof encodingOrCb === 'function' ? encodingOrCb : cb) as ((err?: Error | null) => void) | undefined;
    return (write as (chunk: Buffer, cb: (err?: Error | null) => void) => boolean).call(this, chunk as Buffer, (err) => {
      free(chunk as Marked, onFreed);
      done?.(err);
    });
  } as S['write'];
  return socket;
}

function free(chunk: Marked, onFreed: (bytes: number) => void): void {
  const bytes = chunk.byteLength;
  try {
    // Detaching the buffer releases its memory now; the new, empty one is dropped.
    (chunk.buffer as ArrayBuffer & { transfer(length: number): ArrayBuffer }).transfer(0);
  } catch {
    // Not detachable after all: the next collection frees it, as before.
    return;
  }
  onFreed(bytes);
}
