/** isTransientPgError: which PostgreSQL and node-postgres failures are worth trying again (the node hub retries a verified result on them). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { isTransientPgError } from './postgres-pool.js';

const withCode = (code: string, message = 'x') => Object.assign(new Error(message), { code });

test('the database away, shutting down, overloaded or deadlocked is transient; a broken statement or a violated rule is not', () => {
  for (const code of ['08006', '08001', '53300', '57P01', '57P02', '57P03', '40P01', '40001', 'ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN']) {
    assert.equal(isTransientPgError(withCode(code)), true, code);
  }
  for (const message of ['Connection terminated unexpectedly', 'terminating connection due to administrator command', 'Query read timeout', 'timeout exceeded when trying to connect']) {
    assert.equal(isTransientPgError(new Error(message)), true, message);
  }
  for (const code of ['23505', '23503', '42601', '42P01', '22P02', 'P0001']) assert.equal(isTransientPgError(withCode(code)), false, code);
  assert.equal(isTransientPgError(new Error('no such sweep')), false);
  assert.equal(isTransientPgError(undefined), false);
  assert.equal(isTransientPgError('a string'), false);
});
