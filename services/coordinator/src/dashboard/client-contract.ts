/**
 * The dashboard client's view of the API (static/js/api-types.d.ts) held
 * against the server's own types, at type-check time only (nothing here
 * runs). A field the client reads that the server renames, drops or retypes
 * fails `tsc -p tsconfig.json`; the client's tsconfig then catches every use
 * of a field renamed in api-types.d.ts.
 *
 * Shapes built inline in http.ts (a sweep's jobs, its failed jobs, nodes)
 * and the indexer's search (another service) have no server type to hold
 * them against; api-types.d.ts spells them out by hand.
 */
import type { SweepSpecInput } from '@nightshift/sweep';
import type * as Client from './static/js/api-types.js';
import type { GalleryImage, GalleryImageDetail } from './gallery.js';
import type { SpecPreview } from './preview.js';
import type { LiveEvent } from '../live.js';
import type { SweepView } from '../sweeps.js';
import type { SweepCostView } from '../sweep-cost.js';
import type { JobState, SweepCounts, SweepStatus } from '../store.js';

/** Compiles only when every value the server sends is a value the client's type accepts. */
type Serves<Server extends Client, Client> = [Server, Client];
/** Compiles only when every field the client names exists on the server (for all-optional client types). */
type Names<Server, Client extends { [K in keyof Client]: K extends keyof Server ? unknown : never }> = [Server, Client];
type Event<T extends LiveEvent['type']> = Omit<Extract<LiveEvent, { type: T }>, 'type'>;

export type ClientContract = [
  // Both ways for the enumerations: a state the server adds must be known to the client.
  Serves<SweepStatus, Client.SweepStatus>,
  Serves<Client.SweepStatus, SweepStatus>,
  Serves<JobState, Client.JobState>,
  Serves<Client.JobState, JobState>,
  Serves<SweepCounts, Client.SweepCounts>,
  Serves<SweepView, Client.Sweep>,
  Serves<SweepCostView, Client.SweepCost>,
  Serves<GalleryImage, Client.GalleryImage>,
  Serves<GalleryImageDetail & { favorite: boolean | null }, Client.ImageDetail>,
  Serves<Omit<SpecPreview, 'input'>, Omit<Client.SpecPreview, 'input'>>,
  Serves<SweepSpecInput, Client.SpecDraft>,
  Names<SweepSpecInput, Client.SpecDraft>,
  Serves<Event<'job'>, Client.LiveEvents['job']>,
  Serves<Event<'progress'>, Client.LiveEvents['progress']>,
  Serves<Event<'node'>, Client.LiveEvents['node']>,
  Serves<Event<'sweep'> & { sweep: SweepView | undefined }, Client.LiveEvents['sweep']>,
];
