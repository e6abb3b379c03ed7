import assert from 'node:assert/strict';
import { EventEmitter, once } from 'node:events';
import type { Server } from 'node:http';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { ConnectionHandoff } from '../../../src/workers/connection-handoff.js';
import { HandedConnections } from '../../../src/workers/handed-connections.js';

type T = { after: (fn: () => unknown) => void };

/** A worker stand-in: what it was handed, and whether it takes connections. */
interface Target {
  name: string;
  connections: number;
  inTransit: Map<number, Socket>;
  lastSent: number;
  ready: boolean;
  got: Socket[];
  /** Sending to it fails (its worker went away with the socket in transit). */
  gone?: boolean;
}

/** A handoff on a free loopback port whose sends land in the targets' lists. */
async function handoff(t: T, targets: Target[]) {
  const waits: Array<{ cond: () => boolean; resolve: () => void }> = [];
  let sends = 0;
  /** Connections the handoff looked for a worker for (each accepted one does, at once). */
  let accepted = 0;
  const check = () => {
    for (const w of waits.filter((w) => w.cond())) {
      waits.splice(waits.indexOf(w), 1);
      w.resolve();
    }
  };
  const until = (cond: () => boolean) => (cond() ? Promise.resolve() : new Promise<void>((resolve) => waits.push({ cond, resolve })));
  const h = new ConnectionHandoff<Target>({
    targets,
    ready: (x) => {
      if (x === targets[0]) {
        accepted++;
        queueMicrotask(check);
      }
      return x.ready;
    },
    send: (x, socket, _seq, sent) => {
      sends++;
      // A channel that closed: the worker is no longer ready, as the pool's connected check says.
      if (x.gone && x.name === 'gone') x.ready = false;
      if (x.gone) sent(new Error('channel closed'));
      else {
        x.got.push(socket);
        sent(null);
      }
      check();
    },
    acceptFailed: () => assert.fail('no accept fails here'),
  });
  const port = await h.listen(0, '127.0.0.1');
  const clients: Socket[] = [];
  t.after(() => {
    h.close();
    for (const c of clients) c.destroy();
    for (const x of targets) for (const s of x.got) s.destroy();
  });
  return {
    h,
    /** Opens n client connections and waits until the handoff has accepted them and sent `sent` connections in all. */
    async open(n: number, sent: number): Promise<Socket[]> {
      const before = accepted;
      const opened = Array.from({ length: n }, () => connect(port, '127.0.0.1'));
      clients.push(...opened);
      await Promise.all(opened.map((c) => once(c, 'connect')));
      await until(() => accepted >= before + n && sends >= sent);
      return opened;
    },
  };
}

const target = (name: string, connections = 0, ready = true): Target => ({ name, connections, ready, got: [], inTransit: new Map(), lastSent: 0 });

describe('connection handoff (proxy.connectionBalance least-connections)', () => {
  it('spreads connections opened together evenly: 4 streams over 2 workers go 2 and 2, whatever their addresses', async (t) => {
    const a = target('a');
    const b = target('b');
    const { open } = await handoff(t, [a, b]);
    await open(4, 4);
    assert.deepEqual([a.got.length, b.got.length], [2, 2]);
    assert.deepEqual([a.connections, b.connections], [2, 2]);
  });

  it('hands each connection to the worker holding the fewest, skipping workers not ready', async (t) => {
    const busy = target('busy', 5);
    const light = target('light', 1);
    const starting = target('starting', 0, false);
    const { open } = await handoff(t, [busy, light, starting]);
    await open(4, 4);
    assert.equal(starting.got.length, 0, 'not ready: nothing');
    assert.equal(busy.got.length, 0, 'the light one fills up to the busy one first');
    assert.equal(light.got.length, 4);
    assert.equal(light.connections, 5);
    await open(2, 6);
    assert.deepEqual([busy.got.length, light.got.length], [1, 5], 'equal counts take turns');
  });

  it('holds connections while no worker is ready, and hands them on once one is', async (t) => {
    const w = target('w', 0, false);
    const { h, open } = await handoff(t, [w]);
    const [client] = await open(1, 0);
    // The handoff has accepted it (the kernel completed the handshake) and holds it.
    client!.write('GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n');
    assert.equal(w.got.length, 0);
    w.ready = true;
    h.readyChanged();
    assert.equal(w.got.length, 1);
    const [data] = (await once(w.got[0]!.resume(), 'data')) as [Buffer];
    assert.match(data.toString(), /^GET \/v2\/ HTTP\/1.1/, "the worker reads the client's first bytes: nothing was read before");
  });

  it('keeps its copy of each socket until the worker says it took it, then closes it', async (t) => {
    const w = target('w');
    const { h, open } = await handoff(t, [w]);
    await open(3, 3);
    assert.deepEqual([...w.inTransit.keys()], [1, 2, 3]);
    assert.equal(w.lastSent, 3);
    h.told(w, 2, []);
    assert.deepEqual([...w.inTransit.keys()], [3]);
    assert.ok(w.got[0]!.destroyed && w.got[1]!.destroyed && !w.got[2]!.destroyed, 'the two oldest are closed here');
    h.closed(w, 2);
    assert.equal(w.connections, 1);
  });

  it('a socket a draining worker declines goes to another worker, unread', async (t) => {
    const a = target('a');
    const b = target('b', 5);
    const { h, open } = await handoff(t, [a, b]);
    const [client] = await open(1, 1);
    assert.equal(a.got.length, 1);
    client!.write('GET /v2/ HTTP/1.1\r\nHost: x\r\n\r\n');
    a.ready = false;
    h.told(a, 1, [1]);
    assert.deepEqual([a.connections, a.inTransit.size, b.connections, b.got.length], [0, 0, 6, 1]);
    const [data] = (await once(b.got[0]!.resume(), 'data')) as [Buffer];
    assert.match(data.toString(), /^GET \/v2\/ HTTP\/1.1/, 'the other worker reads the first bytes');
  });

  it('a socket declined three times (every worker out of file descriptors) is closed, not passed round for ever', async (t) => {
    const a = target('a');
    const b = target('b');
    const { h, open } = await handoff(t, [a, b]);
    const [client] = await open(1, 1);
    h.told(a, 1, [1]);
    assert.equal(b.got.length, 1);
    h.told(b, 2, [2]);
    assert.equal(a.got.length, 2, 'declined twice: handed again');
    h.told(a, 3, [3]);
    await once(client!, 'close');
    assert.equal(b.got.length, 1);
  });

  it('a socket declined after the port closed (the whole group was told to stop) is closed, not kept waiting', async (t) => {
    const a = target('a');
    const b = target('b', 1);
    const { h, open } = await handoff(t, [a, b]);
    const [client] = await open(1, 1);
    h.close();
    h.told(a, 1, [1]);
    await once(client!, 'close');
    assert.equal(b.got.length, 0);
  });

  it('a worker that ends with sockets in transit: each of those clients sees its connection closed', async (t) => {
    const w = target('w');
    const { h, open } = await handoff(t, [w]);
    const clients = await open(2, 2);
    h.gone(w);
    await Promise.all(clients.map((c) => once(c, 'close')));
    assert.deepEqual([w.connections, w.inTransit.size], [0, 0]);
  });

  it('a send that fails goes to another worker when the channel is gone, and is closed when it seems not to be (no loop)', async (t) => {
    const gone = target('gone');
    gone.gone = true;
    const other = target('other', 3);
    const { open } = await handoff(t, [gone, other]);
    // The channel is gone and the worker no longer ready: handed on.
    await open(1, 2);
    assert.equal(other.got.length, 1, 'handed to the other');
    assert.deepEqual([gone.connections, gone.inTransit.size], [0, 0]);
    // Still ready: closed rather than sent again and again.
    other.gone = true;
    const [second] = await open(1, 3);
    await once(second!, 'close');
  });

  it('stops accepting on close; connections held for a worker are closed', async (t) => {
    const w = target('w', 0, false);
    const { h, open } = await handoff(t, [w]);
    const [held] = await open(1, 0);
    h.close();
    await once(held!, 'close');
    await assert.rejects(open(1, 0), { code: 'ECONNREFUSED' });
  });
});

describe("the worker's end: which numbered sockets it took, declined, or never got", () => {
  const fakeSocket = () => Object.assign(new EventEmitter(), { destroyed: false, destroy() { this.destroyed = true; } }) as unknown as Socket & { destroyed: boolean };

  it('tells the numbers it took, declines a gap (a message Node dropped) and those it will not serve, in one report each time', () => {
    const told: Array<[number, number[], number]> = [];
    const server = new EventEmitter() as unknown as Server;
    const connections: Socket[] = [];
    server.on('connection', (s: Socket) => connections.push(s));
    const handed = new HandedConnections(server, { told: (through, declined, closed) => told.push([through, declined, closed]) });
    handed.take(1, fakeSocket());
    // Number 2 never came: its descriptor did not fit, and Node dropped the message.
    handed.take(3, fakeSocket());
    assert.equal(connections.length, 2, 'served through the listener');
    handed.flush();
    assert.deepEqual(told, [[3, [2], 0]]);
    // Draining: 4 is declined (closed here, unread), and told at once.
    const four = fakeSocket();
    handed.decline(4, four);
    assert.ok(four.destroyed);
    assert.deepEqual(told.at(-1), [4, [4], 0]);
    // The control plane's check: 5 and 6 were sent before it and never came.
    handed.reach(6);
    assert.deepEqual(told.at(-1), [6, [5, 6], 0]);
    handed.reach(6);
    assert.equal(told.length, 3, 'nothing new: nothing told');
    // A number already told of as never come is not served (its copy went to another worker).
    const late = fakeSocket();
    handed.take(5, late);
    assert.ok(late.destroyed);
    assert.equal(connections.length, 2);
    (connections[0] as unknown as EventEmitter).emit('close');
    handed.flush();
    assert.deepEqual(told.at(-1), [6, [], 1]);
  });
});
