import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { freePort } from './ports.js';

test('freePort: never the same port twice in a process, each one free, none in the range the kernel gives outgoing connections', async () => {
  // A farm takes NATS's and S3's ports one after the other before either server binds: the kernel's
  // own pick (listen on 0, close) could hand out the same port twice, and an S3 server then failed with EADDRINUSE.
  const [ephemeralLow] = readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
  const ports: number[] = [];
  for (let i = 0; i < 300; i++) ports.push(await freePort());
  assert.equal(new Set(ports).size, ports.length, 'no port handed out twice');
  for (const p of ports) assert.ok(p >= 10_000 && p < ephemeralLow!, `${p} is outside the ephemeral range`);
  // Each is bindable now (none was left bound by freePort itself).
  for (const p of ports.slice(0, 20)) {
    await new Promise<void>((resolve, reject) => {
      const srv = createServer();
      srv.once('error', reject);
      srv.listen(p, '127.0.0.1', () => srv.close(() => resolve()));
    });
  }
});
