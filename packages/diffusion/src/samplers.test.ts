import { test } from 'node:test';
import assert from 'node:assert/strict';
import { A1111_SAMPLER_NAMES, isSamplerName, SAMPLERS, unknownSamplerMessage } from './samplers.js';

test('every sampler has its A1111 name', () => {
  assert.deepEqual(A1111_SAMPLER_NAMES, {
    euler: 'Euler',
    euler_a: 'Euler a',
    ddim: 'DDIM',
    dpmpp_2m: 'DPM++ 2M',
    dpmpp_2m_karras: 'DPM++ 2M Karras',
    lcm: 'LCM',
  });
  assert.deepEqual(Object.keys(A1111_SAMPLER_NAMES).sort(), [...SAMPLERS].sort());
});

test('unknown names are recognised and the message lists the valid ones', () => {
  assert.ok(isSamplerName('euler_a'));
  assert.ok(!isSamplerName('Euler a'));
  assert.ok(!isSamplerName(7));
  assert.equal(unknownSamplerMessage('heun'), 'unknown sampler "heun"; valid samplers: euler, euler_a, ddim, dpmpp_2m, dpmpp_2m_karras, lcm');
});
