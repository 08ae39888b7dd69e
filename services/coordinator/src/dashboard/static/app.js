// @ts-check
// Nightshift dashboard client: plain ES modules under js/, no framework, no
// build step. Pages are server-rendered HTML (pages.ts); each page's module
// fills in data from the JSON API and keeps it live over Server-Sent Events.
// This entry wires what every page shares and starts the page's module.
import { setupForgetButton } from './js/auth.js';
import { messageOf, toast } from './js/dom.js';
import { galleryPage } from './js/gallery.js';
import { setupImageDialog } from './js/image-dialog.js';
import { nodesPage } from './js/nodes.js';
import { ensureFileSession, retryFailedImages } from './js/request.js';
import { submitPage } from './js/submit.js';
import { sweepPage } from './js/sweep.js';
import { sweepsPage } from './js/sweeps.js';
import { showWhoami } from './js/whoami.js';

/** Each page's module, by the page name pages.ts puts on <body data-page>. @type {Record<string, () => unknown>} */
const PAGES = { sweeps: sweepsPage, submit: submitPage, sweep: sweepPage, gallery: galleryPage, nodes: nodesPage };

retryFailedImages();

async function boot() {
  setupForgetButton();
  setupImageDialog();
  await ensureFileSession();
  // The user in the header: informative only, never in the page's way.
  void showWhoami().catch(() => {});
  await PAGES[document.body.dataset.page ?? '']?.();
}

boot().catch((err) => toast(messageOf(err) || String(err), { error: true }));
