/**
 * The setup most dashboard tests share: a real farm in a temp dir with its
 * nodes online, headless Chromium, and (openFarmPage) one page whose errors
 * are collected; plus a sweep submitted over HTTP and waited for until the
 * indexer has every image. Each test keeps its own farm options.
 */
import assert from 'node:assert/strict';
import type { Browser, Page } from 'playwright-core';
import { postSweep, startFarm, tempDir, waitFor, waitForNodes, type Farm, type FarmOptions } from '@nightshift/devfarm';
import { launch, watchPage } from './chromium.js';

type FarmSettings = Omit<FarmOptions, 'dir'>;

export interface FarmBrowserOptions extends FarmSettings {
  /** Prefix of the temp dir the farm lives in. */
  tmpPrefix?: string;
  /** Runs in the temp dir before the farm starts (to write a node config, say); what it returns joins the farm options. */
  prepare?: (dir: string) => FarmSettings | Promise<FarmSettings>;
  /** Headers the API wants (a bearer token), for waiting on the nodes. */
  headers?: Record<string, string>;
}

export interface FarmBrowser {
  farm: Farm;
  tmp: ReturnType<typeof tempDir>;
  browser: Browser;
  /** Closes the browser, stops the farm and removes the temp dir. */
  close(): Promise<void>;
}

export interface FarmPage extends FarmBrowser {
  page: Page;
  /** Page errors and console errors seen so far (watchPage). */
  problems: string[];
}

export const VIEWPORT = { width: 1280, height: 900 };

/** A farm with `nodes` online and a launched Chromium; on a failure half way, what was started is closed again. */
export async function openFarmBrowser(opts: FarmBrowserOptions = {}): Promise<FarmBrowser> {
  const { tmpPrefix, prepare, headers, ...settings } = opts;
  const tmp = tempDir(tmpPrefix);
  let farm: Farm | undefined;
  let browser: Browser | undefined;
  const close = async () => {
    await browser?.close();
    await farm?.stop();
    tmp.cleanup();
  };
  try {
    const extra = prepare ? await prepare(tmp.dir) : {};
    farm = await startFarm({ ...settings, ...extra, dir: tmp.dir });
    const nodes = extra.nodes ?? settings.nodes ?? 2; // startFarm's default
    if (nodes > 0) await waitForNodes(farm.apiUrl, nodes, headers);
    browser = await launch();
    return { farm, tmp, browser, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/** openFarmBrowser plus one page (1280×900 unless `viewport` says) whose problems are collected. */
export async function openFarmPage(opts: FarmBrowserOptions & { viewport?: { width: number; height: number } } = {}): Promise<FarmPage> {
  const { viewport = VIEWPORT, ...rest } = opts;
  const fb = await openFarmBrowser(rest);
  try {
    const page = await fb.browser.newPage({ viewport });
    return { ...fb, page, problems: watchPage(page).problems };
  } catch (err) {
    await fb.close();
    throw err;
  }
}

export interface IndexedImage {
  key: string;
  prompt: string;
}

/**
 * Submits `spec` (expecting 201) and waits until the indexer's search over
 * that sweep finds exactly `n` images; returns the sweep id and those images.
 */
export async function submitAndWaitIndexed(apiUrl: string, spec: unknown, n: number, headers: Record<string, string> = {}): Promise<{ id: string; images: IndexedImage[] }> {
  const res = await postSweep(apiUrl, spec, headers);
  assert.equal(res.status, 201, await res.clone().text());
  const { id } = (await res.json()) as { id: string };
  const images = await waitFor(
    `all ${n} images indexed`,
    async () => {
      const r = (await (await fetch(`${apiUrl}/api/search?q=circle&k=${Math.max(100, n)}&sweep=${id}`, { headers })).json()) as { results?: IndexedImage[] };
      return r.results?.length === n ? r.results : undefined;
    },
    120_000,
    500,
  );
  return { id, images };
}
