import type { Socket } from 'node:net';

/**
 * The bytes libuv still holds of the writes under way on the client's TCP connection (under TLS,
 * the encrypted ones of the connection beneath): Node's handle counts them down as the kernel
 * takes them, where the stream sees a write only once it is done. Undefined where Node has no
 * such count.
 */
export function unsentBytes(socket: Socket): number | undefined {
  const tcp = (socket as Socket & { _parent?: Socket })._parent ?? socket;
  const queued = (tcp as unknown as { _handle?: { writeQueueSize?: unknown } })._handle?.writeQueueSize;
  return typeof queued === 'number' ? queued : undefined;
}
