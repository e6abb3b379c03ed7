import net from 'node:net';

/**
 * An L4 balancer in front of several harbor-lb instances: each new connection goes to the next
 * target. Targets are filled in after start, since the instances need its port as their public URL.
 */
export async function startTcpRoundRobin(): Promise<{ port: number; targets: number[]; connections: number[]; close(): Promise<void> }> {
  const targets: number[] = [];
  const connections: number[] = [];
  let next = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((client) => {
    const i = next++ % targets.length;
    connections[i] = (connections[i] ?? 0) + 1;
    const upstream = net.connect(targets[i]!, '127.0.0.1');
    for (const s of [client, upstream]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        client.destroy();
        upstream.destroy();
      });
    }
    client.pipe(upstream).pipe(client);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    targets,
    connections,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
