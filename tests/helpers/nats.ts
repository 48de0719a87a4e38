/** A real nats-server and one connection to it for a test file: started before its tests, stopped after them. */
import { afterAll, beforeAll } from "vitest";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { startNatsServer, type NatsServer } from "../../src/testing/nats-server.js";

export interface NatsFixture {
  readonly server: NatsServer;
  readonly nc: NatsConnection;
}

export function natsFixture(): NatsFixture {
  const f = {} as { server: NatsServer; nc: NatsConnection };
  beforeAll(async () => {
    f.server = await startNatsServer();
    f.nc = await connect({ servers: f.server.url });
  });
  afterAll(async () => {
    await f.nc?.close();
    await f.server?.stop();
  });
  return f;
}
