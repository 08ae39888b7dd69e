/** Everything the coordinator's handlers need, named in one place (Flamenco style). */
import type { Config, Logger, Ops, Storage } from '@nightshift/common';
import type { Store } from './store.js';
import type { NodeHub } from './node-hub.js';
import type { Live } from './live.js';
import type { OutboxPublisher } from './outbox.js';

export interface CoordinatorDeps {
  config: Config;
  log: Logger;
  store: Store;
  hub: NodeHub;
  live: Live;
  outbox: Pick<OutboxPublisher, 'poke'>;
  storage: Storage;
  /** /metrics and /readyz (absent in handler unit tests). */
  ops?: Ops;
}
