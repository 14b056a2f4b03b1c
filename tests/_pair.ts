/**
 * Test helper: two connected ends of an in-memory connection on an isolated
 * network, for tests of protocols that only need a `Connection`.
 */

import { MemoryNetwork, MemoryTransport } from "../memsocket/mod.ts";
import { Multiaddr } from "../netcore/multiaddr.ts";
import type { Connection } from "../netcore/transport/connection.ts";

/** A dialer end and a listener end of one fresh in-memory connection. */
export async function connectedPair(): Promise<[Connection, Connection]> {
  const transport = new MemoryTransport({ network: new MemoryNetwork() });
  const listener = await transport.listen(Multiaddr.parse("/memory/0"));
  const iterator = listener[Symbol.asyncIterator]();
  const [dialer, accepted] = await Promise.all([transport.dial(listener.addr), iterator.next()]);
  await listener.close();
  if (accepted.done) throw new Error("listener ended before accepting");
  return [dialer, accepted.value];
}
