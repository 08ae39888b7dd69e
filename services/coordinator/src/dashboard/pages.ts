/**
 * Server-rendered HTML for the dashboard's pages: the layout, navigation,
 * forms and dialogs are plain HTML (usable with the keyboard and readable by
 * screen readers before any script runs); the client's modules (static/app.js
 * and static/js/) fill in the data and keep it live.
 */
import { escapeHtml } from '@nightshift/common';
import { A1111_SAMPLER_NAMES, SAMPLERS } from '@nightshift/diffusion';
import { ONNX_DEFAULT_MODEL, SPEC_LIMITS } from '@nightshift/sweep';

export type PageName = 'sweeps' | 'submit' | 'sweep' | 'gallery' | 'nodes';


const NAV: [PageName, string, string][] = [
  ['sweeps', '/ui/', 'Sweeps'],
  ['submit', '/ui/submit', 'Submit'],
  ['gallery', '/ui/gallery', 'Gallery'],
  ['nodes', '/ui/nodes', 'Nodes'],
];

export interface LayoutOptions {
  page: PageName;
  title: string;
  body: string;
  /** Where the static files are linked from (assets.ts: versioned, so cached for good). */
  assetBase: string;
  /** The client's ES modules under assetBase, entry first; the rest are preloaded so their imports do not load one level at a time. */
  modules: string[];
  data?: Record<string, string>;
}

export function layout(o: LayoutOptions): string {
  const data = Object.entries(o.data ?? {})
    .map(([k, v]) => ` data-${k}="${escapeHtml(v)}"`)
    .join('');
  const [entry = 'app.js', ...imports] = o.modules;
  const preload = imports.map((m) => `\n<link rel="modulepreload" href="${o.assetBase}/${escapeHtml(m)}">`).join('');
  const nav = NAV.map(([p, href, label]) => `<a href="${href}"${p === o.page || (o.page === 'sweep' && p === 'sweeps') ? ' aria-current="page"' : ''}>${label}</a>`).join('');
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="color-scheme" content="dark light">
<link rel="icon" href="data:,">
<title>${escapeHtml(o.title)} · Nightshift</title>
<link rel="stylesheet" href="${o.assetBase}/style.css">
<script type="module" src="${o.assetBase}/${escapeHtml(entry)}"></script>${preload}
</head>
<body data-page="${o.page}"${data}>
<a class="skip" href="#main">Skip to content</a>
<header class="top">
  <a class="brand" href="/ui/" aria-label="Nightshift home">☾ Nightshift</a>
  <nav aria-label="Main">${nav}</nav>
  <span id="live" class="live" role="status" aria-live="polite">connecting…</span>
  <span id="whoami" class="whoami" hidden></span>
  <button type="button" id="forget-token" class="link" hidden>Forget API token</button>
</header>
<main id="main" tabindex="-1">
${o.body}
</main>
<div id="toasts" class="toasts" role="status" aria-live="polite"></div>
${IMAGE_DIALOG}
${AUTH_DIALOG}
<noscript><p class="noscript">The dashboard needs JavaScript for live data. The JSON API is under /api.</p></noscript>
</body>
</html>`;
}

const AUTH_DIALOG = `<dialog id="auth-dialog" aria-labelledby="auth-title">
  <form id="auth-form" method="dialog">
    <h2 id="auth-title">API token needed</h2>
    <p>This coordinator is protected by <code>NIGHTSHIFT_API_TOKEN</code>. Enter the token once; it is kept in this browser's local storage and sent as an <code>Authorization</code> header, never in a URL.</p>
    <input type="text" name="username" autocomplete="username" value="nightshift" hidden>
    <label for="auth-token">API token</label>
    <input id="auth-token" name="token" type="password" autocomplete="current-password" required aria-describedby="auth-error">
    <p id="auth-error" class="field-error" role="alert"></p>
    <div class="actions"><button type="submit" class="primary">Save token</button></div>
  </form>
</dialog>`;

const IMAGE_DIALOG = `<dialog id="image-dialog" aria-labelledby="img-title">
  <div class="dialog-head">
    <h2 id="img-title">Image</h2>
    <form method="dialog"><button type="submit" class="icon" aria-label="Close">✕</button></form>
  </div>
  <div class="detail">
    <a id="img-full-link" target="_blank" rel="noopener"><img id="img-full" alt="" width="512" height="512"></a>
    <div>
      <dl id="img-meta" class="meta"></dl>
      <div class="actions">
        <button type="button" id="img-fav" class="fav" aria-pressed="false">☆ Favorite</button>
        <a id="img-like" class="button" href="/ui/gallery">More like this</a>
        <a id="img-sweep" class="button" href="/ui/">Open its sweep</a>
      </div>
      <form id="img-more-form" class="inline">
        <label for="img-more-count">More seeds</label>
        <input id="img-more-count" type="number" min="1" max="1000" value="4" required>
        <button type="submit">Render more seeds of this</button>
      </form>
      <div class="actions">
        <button type="button" id="img-upscale">Upscale ×4</button>
        <button type="button" id="img-variations" aria-describedby="img-variations-hint">Variations</button>
      </div>
      <p id="img-variations-hint" class="hint">Variations: new seeds of this prompt started from this image (img2img on the onnx backend).</p>
      <p id="img-msg" class="msg" role="status"></p>
    </div>
  </div>
</dialog>`;

export function sweepsPage(): string {
  return `<div class="page-head"><h1>Sweeps</h1><a class="button primary" href="/ui/submit">New sweep</a></div>
<p id="sweeps-msg" class="msg" role="status"></p>
<table class="sweeps">
  <caption class="sr-only">All sweeps, newest first, with live progress</caption>
  <thead><tr><th scope="col">Sweep</th><th scope="col">Status</th><th scope="col">Progress</th><th scope="col">ETA</th><th scope="col">Priority</th><th scope="col">Actions</th></tr></thead>
  <tbody id="sweeps-body"><tr><td colspan="6" class="muted">Loading…</td></tr></tbody>
</table>`;
}

function field(id: string, label: string, input: string, path: string, hint = ''): string {
  return `<div class="field" data-path="${path}">
  <label for="${id}">${label}</label>
  ${input}
  ${hint ? `<p class="hint" id="${id}-hint">${hint}</p>` : ''}
  <p class="field-error" id="${id}-error"></p>
</div>`;
}

const describedBy = (id: string, hint: boolean) => `aria-describedby="${hint ? `${id}-hint ` : ''}${id}-error"`;

/** data-default-model: what an empty Model field means for that backend (the form's hint says it). */
const BACKEND_OPTIONS = [
  '<option value="procedural">procedural (built-in test renderer)</option>',
  '<option value="exec">exec (your generator)</option>',
  `<option value="onnx" data-default-model="${escapeHtml(ONNX_DEFAULT_MODEL)}">onnx (Stable Diffusion on the node)</option>`,
].join('');

/** The onnx backend's own settings, shown while it is the chosen backend (spec-form.js). */
const ONNX_FIELDS = `<fieldset id="onnx-fields" data-path="params" hidden>
    <legend>Stable Diffusion (onnx)</legend>
    <div class="row">
      ${field(
        'f-sampler',
        'Sampler',
        `<select id="f-sampler" name="sampler" ${describedBy('f-sampler', true)}><option value="">model’s scheduler</option>${SAMPLERS.map((s) => `<option value="${s}">${s} (${escapeHtml(A1111_SAMPLER_NAMES[s])})</option>`).join('')}</select>`,
        'params.sampler',
        'Empty: the one in the model’s scheduler_config.json.',
      )}
      ${field(
        'f-batch',
        'Batch',
        `<input id="f-batch" name="batch" type="number" min="1" max="${SPEC_LIMITS.maxBatch}" step="1" placeholder="1" ${describedBy('f-batch', true)}>`,
        'params.batch',
        `Seeds of one prompt a node renders in one UNet batch (1–${SPEC_LIMITS.maxBatch}; fewer where its card is too small). Empty: 1.`,
      )}
    </div>
    ${field('f-negative', 'Negative prompt', `<textarea id="f-negative" name="negative_prompt" rows="2" placeholder="blurry, low quality" ${describedBy('f-negative', true)}></textarea>`, 'params.negative_prompt', 'What the images should not look like (every prompt of the sweep).')}
  </fieldset>`;

export function submitPage(maxJobs: number): string {
  return `<h1>Submit a sweep</h1>
<section id="remix" class="remix-drop" aria-label="Remix an image">
  <p><strong>Remix an image:</strong> drop a PNG here, or <label for="remix-file" class="file-pick">choose one</label>. The prompt and settings it was made with (Nightshift, AUTOMATIC1111, ComfyUI or InvokeAI) fill the form below.</p>
  <input id="remix-file" type="file" accept="image/png">
  <div id="remix-result" role="status" aria-live="polite"></div>
</section>
<div class="submit-layout">
<form id="sweep-form" novalidate>
  <p id="form-error" class="form-error" role="alert"></p>
  ${field('f-name', 'Name', `<input id="f-name" name="name" type="text" maxlength="200" ${describedBy('f-name', false)}>`, 'name')}
  ${field('f-prompts', 'Prompts', `<textarea id="f-prompts" name="prompts" rows="4" required ${describedBy('f-prompts', true)}></textarea>`, 'prompts', 'One prompt per line.')}
  <fieldset class="axes" data-path="axes">
    <legend>Axes</legend>
    <p class="hint">Each axis multiplies the sweep by its values. Name an axis <code>params.steps</code> (etc.) to vary a setting instead of the prompt.</p>
    <div id="axes-rows"></div>
    <button type="button" id="add-axis">Add axis</button>
    <p class="field-error" id="axes-error"></p>
  </fieldset>
  ${field('f-zip', 'Zip axes', `<input id="f-zip" name="zip" type="text" placeholder="style, mood" ${describedBy('f-zip', true)}>`, 'zip', 'Optional: axis names to pair value by value instead of crossing.')}
  ${field('f-template', 'Template', `<input id="f-template" name="template" type="text" placeholder="{prompt}, {style}" ${describedBy('f-template', true)}>`, 'template', 'Optional. <code>{prompt}</code> and axis names; default: the prompt followed by the axis values.')}
  <fieldset data-path="seeds">
    <legend>Seeds</legend>
    <div class="row">
      ${field('f-seed-start', 'First seed', `<input id="f-seed-start" name="seedStart" type="number" min="0" value="0" ${describedBy('f-seed-start', false)}>`, 'seeds.start')}
      ${field('f-seed-count', 'Count', `<input id="f-seed-count" name="seedCount" type="number" min="1" value="4" ${describedBy('f-seed-count', false)}>`, 'seeds.count')}
    </div>
    ${field('f-seed-list', 'Or a list of seeds', `<input id="f-seed-list" name="seedList" type="text" placeholder="7, 42, 1234" ${describedBy('f-seed-list', true)}>`, 'seeds.list', 'When given, replaces first seed and count.')}
    <p class="field-error" id="seeds-error"></p>
  </fieldset>
  <fieldset data-path="params">
    <legend>Settings</legend>
    <div class="row">
      ${field('f-width', 'Width', `<input id="f-width" name="width" type="number" min="64" max="2048" step="8" value="256" ${describedBy('f-width', false)}>`, 'params.width')}
      ${field('f-height', 'Height', `<input id="f-height" name="height" type="number" min="64" max="2048" step="8" value="256" ${describedBy('f-height', false)}>`, 'params.height')}
      ${field('f-steps', 'Steps', `<input id="f-steps" name="steps" type="number" min="1" max="1000" value="30" ${describedBy('f-steps', false)}>`, 'params.steps')}
      ${field('f-guidance', 'Guidance', `<input id="f-guidance" name="guidance" type="number" min="0" max="100" step="0.5" value="7.5" ${describedBy('f-guidance', false)}>`, 'params.guidance')}
    </div>
    ${field('f-extra', 'Other parameters', `<textarea id="f-extra" name="extra" rows="2" placeholder="sampler=euler" ${describedBy('f-extra', true)}></textarea>`, 'params.extra', 'Optional <code>key=value</code> lines passed to the backend.')}
    <p class="field-error" id="params-error"></p>
  </fieldset>
  <div class="row">
    ${field('f-backend', 'Backend', `<select id="f-backend" name="backend" ${describedBy('f-backend', false)}>${BACKEND_OPTIONS}</select>`, 'backend')}
    ${field('f-model', 'Model', `<input id="f-model" name="model" type="text" placeholder="backend default" ${describedBy('f-model', true)}>`, 'model', '<span id="f-model-default">Empty: the backend’s default model.</span>')}
    ${field('f-priority', 'Priority', `<input id="f-priority" name="priority" type="number" min="-100" max="100" value="0" ${describedBy('f-priority', true)}>`, 'priority', '−100 to 100; higher runs first.')}
  </div>
  ${ONNX_FIELDS}
  <div class="actions"><button type="submit" class="primary" id="submit-sweep">Submit sweep</button></div>
</form>
<aside class="preview" aria-labelledby="preview-title">
  <h2 id="preview-title">Preview</h2>
  <p id="preview-count" class="big" aria-live="polite">Fill in a prompt to see the sweep.</p>
  <p class="hint">At most ${maxJobs.toLocaleString('en-US')} jobs per sweep.</p>
  <h3>Sample prompts</h3>
  <ol id="preview-samples" class="samples"></ol>
</aside>
</div>
<details id="paste" class="paste">
  <summary>Paste a YAML or JSON spec instead</summary>
  <form id="paste-form" novalidate>
    <label for="spec-text">Sweep spec (YAML or JSON)</label>
    <textarea id="spec-text" rows="12" spellcheck="false" aria-describedby="paste-result"></textarea>
    <div class="actions">
      <button type="button" id="paste-check">Check</button>
      <button type="button" id="paste-load">Load into the form</button>
      <button type="submit" class="primary" id="paste-submit">Submit this spec</button>
    </div>
    <div id="paste-result" role="status" aria-live="polite"></div>
  </form>
</details>
<template id="axis-row">
  <div class="axis-row field" data-path="axes.">
    <div><label>Axis name</label><input class="axis-name" type="text" placeholder="style" required></div>
    <div class="grow"><label>Values, one per line</label><textarea class="axis-values" rows="3"></textarea></div>
    <button type="button" class="remove-axis">Remove axis</button>
    <p class="field-error"></p>
  </div>
</template>`;
}

export function sweepPage(): string {
  return `<nav aria-label="Breadcrumb" class="crumbs"><a href="/ui/">Sweeps</a> › <span id="crumb-name">…</span></nav>
<div class="page-head"><h1 id="sweep-title">Sweep</h1><span id="sweep-status" class="badge"></span></div>
<section id="sweep-summary" class="summary" aria-label="Progress">
  <div class="bar" role="progressbar" aria-label="Sweep progress" aria-valuemin="0" aria-valuemax="100" aria-valuenow="0"><span></span></div>
  <p id="sweep-counts"></p>
  <p id="sweep-explain" class="warn" hidden></p>
  <p id="sweep-cost" hidden></p>
  <ul id="sweep-cost-nodes" class="muted" aria-label="Cost per node" hidden></ul>
</section>
<div class="actions" id="sweep-actions">
  <button type="button" data-action="pause">Pause</button>
  <button type="button" data-action="resume">Resume</button>
  <button type="button" data-action="cancel" class="danger">Cancel</button>
  <form class="inline" id="priority-form"><label for="priority-input">Priority</label><input id="priority-input" type="number" min="-100" max="100" required><button type="submit">Set</button></form>
  <button type="button" id="upscale-favs">Upscale favorites</button>
</div>
<p id="sweep-msg" class="msg" role="status"></p>
<section id="best-section" class="best"><button type="button" id="best-load">Best of this sweep</button> <span id="best-note" class="muted"></span><div id="best-strip" class="best-strip"></div></section>
<fieldset class="view-switch">
  <legend>View</legend>
  <label><input type="radio" name="view" value="sheet" checked> Contact sheet</label>
  <label><input type="radio" name="view" value="xy"> X/Y grid</label>
  <span id="xy-controls" hidden>
    <label for="xy-rows">Rows</label><select id="xy-rows"></select>
    <label for="xy-cols">Columns</label><select id="xy-cols"></select>
  </span>
</fieldset>
<p class="legend"><span class="dot queued"></span> queued <span class="dot running"></span> rendering <span class="dot done"></span> done <span class="dot failed"></span> failed (hover or focus for the error)</p>
<div id="sheet" class="sheet" aria-live="off"><p class="muted">Loading jobs…</p></div>
<section id="failed-section" hidden><h2>Failed jobs</h2><ul id="failed-list" class="failed-list"></ul></section>`;
}

export function galleryPage(): string {
  return `<h1>Gallery</h1>
<form id="gallery-form" role="search" class="searchbar" method="get" action="/ui/gallery">
  <label for="g-q" class="sr-only">Search images by text</label>
  <input id="g-q" name="q" type="search" placeholder="Search images by text, e.g. “red circle”" autocomplete="off">
  <label for="g-sweep">Sweep</label>
  <select id="g-sweep" name="sweep"><option value="">All sweeps</option></select>
  <label class="check"><input id="g-fav" type="checkbox" name="favorites" value="true"> Favorites only</label>
  <label for="g-sort">Sort</label>
  <select id="g-sort" name="sort"><option value="">Newest first</option><option value="likely">Likely favorites</option></select>
  <input type="hidden" name="like" id="g-like">
  <button type="submit" class="primary">Search</button>
</form>
<div id="like-banner" class="banner" hidden></div>
<p id="gallery-status" class="msg" role="status"></p>
<ul id="gallery-grid" class="grid" aria-label="Images"></ul>
<nav id="pager" class="pager" aria-label="Gallery pages"></nav>`;
}

export function nodesPage(): string {
  return `<h1>Nodes</h1>
<p id="nodes-msg" class="msg" role="status"></p>
<table class="nodes">
  <caption class="sr-only">gpu-nodes registered with this coordinator</caption>
  <thead><tr><th scope="col">Node</th><th scope="col">Status</th><th scope="col">GPU</th><th scope="col">VRAM</th><th scope="col">Backends</th><th scope="col">Models</th><th scope="col">Slots</th><th scope="col">Current jobs</th><th scope="col">Done</th><th scope="col">Throughput</th><th scope="col">Last heartbeat</th></tr></thead>
  <tbody id="nodes-body"><tr><td colspan="11" class="muted">Loading…</td></tr></tbody>
</table>`;
}
