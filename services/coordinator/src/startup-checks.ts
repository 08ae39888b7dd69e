/**
 * Settings the coordinator refuses to start with, because they would leave
 * the farm open to anyone who can reach it. Each message names the setting
 * to change; NIGHTSHIFT_INSECURE_OPEN=1 overrides (a trusted lab network).
 */
import type { Config } from '@nightshift/common';
import { isLoopbackAddress } from './request-guard.js';

export type ExposureConfig = Pick<
  Config,
  'NIGHTSHIFT_HTTP_HOST' | 'NIGHTSHIFT_API_TOKEN' | 'NIGHTSHIFT_NODE_TOKEN' | 'NIGHTSHIFT_NODE_TOKENS' | 'NIGHTSHIFT_NODE_TOKENS_FILE' | 'NIGHTSHIFT_INSECURE_OPEN'
>;

/** Why the coordinator must not start with this config, or undefined when it may. */
export function unsafeExposure(config: ExposureConfig): string | undefined {
  if (config.NIGHTSHIFT_INSECURE_OPEN) return undefined;
  const host = config.NIGHTSHIFT_HTTP_HOST;
  if (!isLoopbackAddress(host) && !config.NIGHTSHIFT_API_TOKEN) {
    return (
      `NIGHTSHIFT_HTTP_HOST is ${host}, which is not loopback, and NIGHTSHIFT_API_TOKEN is not set: anyone who can reach the farm could drive it. ` +
      'Set NIGHTSHIFT_API_TOKEN, listen on 127.0.0.1, or set NIGHTSHIFT_INSECURE_OPEN=1 to accept the risk.'
    );
  }
  const nodeTokens = config.NIGHTSHIFT_NODE_TOKEN || config.NIGHTSHIFT_NODE_TOKENS || config.NIGHTSHIFT_NODE_TOKENS_FILE;
  if (config.NIGHTSHIFT_API_TOKEN && !nodeTokens) {
    return (
      'NIGHTSHIFT_API_TOKEN is set but no node token is (NIGHTSHIFT_NODE_TOKEN, NIGHTSHIFT_NODE_TOKENS or NIGHTSHIFT_NODE_TOKENS_FILE): ' +
      'anyone could connect as a gpu-node and take or complete jobs. Set one, or NIGHTSHIFT_INSECURE_OPEN=1 to accept the risk.'
    );
  }
  return undefined;
}
