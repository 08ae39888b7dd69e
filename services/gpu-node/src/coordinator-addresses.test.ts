/** NIGHTSHIFT_COORDINATOR parsing, and the round robin over entries and DNS records. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createLogger } from '@nightshift/common';
import { CoordinatorAddresses, MAX_COORDINATOR_ADDRESSES, parseCoordinatorAddresses, type Lookup } from './coordinator-addresses.js';

const log = createLogger('coordinator-addresses-test', 'silent');

test('one address, a list, IPv6 in brackets and host names parse', () => {
  assert.deepEqual(parseCoordinatorAddresses('127.0.0.1:7070'), [{ host: '127.0.0.1', port: 7070, literal: true, text: '127.0.0.1:7070' }]);
  const list = parseCoordinatorAddresses(' coord-a.farm.internal:7070 , [::1]:7071,coordinator:1');
  assert.deepEqual(list.map((e) => [e.host, e.port, e.literal]), [['coord-a.farm.internal', 7070, false], ['::1', 7071, true], ['coordinator', 1, false]]);
});

test('bad entries are refused with an error naming them', () => {
  const bad: [string, RegExp][] = [
    ['', /empty/],
    ['a:1,,b:2', /empty entry/],
    ['coordinator', /"coordinator" is not host:port/],
    ['coordinator:70700', /port 70700 is not 1-65535/],
    ['coordinator:0', /port 0/],
    ['::1:7070', /IPv6 address goes in brackets/],
    ['[coordinator]:7070', /only an IPv6 address goes in brackets/],
    ['bad_name!:7070', /is not a host name or IP address/],
    ['-lead.example:7070', /is not a host name/],
    ['a:7070,A:7070', /listed twice/],
    ['http://a:7070', /not host:port/],
    [`${'a'.repeat(4_100)}:1`, /longer than 4096/],
  ];
  for (const [value, why] of bad) assert.throws(() => parseCoordinatorAddresses(value), (err: Error) => err.message.startsWith('NIGHTSHIFT_COORDINATOR: ') && why.test(err.message), value);
  const many = Array.from({ length: MAX_COORDINATOR_ADDRESSES + 1 }, (_, i) => `c${i}:7070`).join(',');
  assert.throws(() => parseCoordinatorAddresses(many), /17 addresses, at most 16/);
  assert.equal(parseCoordinatorAddresses(many.split(',').slice(1).join(',')).length, MAX_COORDINATOR_ADDRESSES);
});

test('round robin over entries; a name counts once per record and is looked up again each round', async () => {
  const answers: Record<string, string[][]> = { 'replicas.farm': [['10.0.0.1', '10.0.0.2'], ['10.0.0.3']] };
  const asked: string[] = [];
  const lookup: Lookup = async (host) => {
    asked.push(host);
    const next = answers[host]?.shift();
    if (!next) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return next.map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));
  };
  const addresses = new CoordinatorAddresses(parseCoordinatorAddresses('127.0.0.1:7070,replicas.farm:7071,[::1]:7072'), { log, lookup });
  const take = async (n: number) => {
    const out: (string | undefined)[] = [];
    for (let i = 0; i < n; i++) out.push((await addresses.next())?.address);
    return out;
  };
  assert.deepEqual(await take(4), ['127.0.0.1:7070', '10.0.0.1:7071', '10.0.0.2:7071', '[::1]:7072']);
  assert.deepEqual(asked, ['replicas.farm'], 'looked up once for the whole round');
  // Second round: the name's records changed.
  assert.deepEqual(await take(3), ['127.0.0.1:7070', '10.0.0.3:7071', '[::1]:7072']);
  // Third round: the name no longer resolves; the round goes on without it.
  assert.deepEqual(await take(2), ['127.0.0.1:7070', '[::1]:7072']);
  assert.deepEqual(asked, ['replicas.farm', 'replicas.farm', 'replicas.farm']);
});

test('a looked-up address keeps the configured name for TLS', async () => {
  const addresses = new CoordinatorAddresses(parseCoordinatorAddresses('coordinator.farm:7070'), { log, lookup: async () => [{ address: '::1', family: 6 }, { address: '::1', family: 6 }] });
  assert.deepEqual(await addresses.next(), { address: '[::1]:7070', entry: 'coordinator.farm:7070', serverName: 'coordinator.farm' });
  // The duplicate record was one address: the next round starts again.
  assert.equal((await addresses.next())?.address, '[::1]:7070');
});

test('when nothing resolves, next() says so instead of spinning', async () => {
  const addresses = new CoordinatorAddresses(parseCoordinatorAddresses('nowhere.invalid:7070'), { log, lookup: async () => [] });
  assert.equal(await addresses.next(), undefined);
});

test('the system resolver expands localhost to its loopback records', async () => {
  const addresses = new CoordinatorAddresses(parseCoordinatorAddresses('localhost:7070'), { log });
  const first = await addresses.next();
  assert.ok(first, 'localhost resolves');
  assert.match(first.address, /^(127\.\d+\.\d+\.\d+|\[::1\]):7070$/);
  assert.equal(first.serverName, 'localhost');
});
