// @ts-check
// The API token: kept in local storage, asked for in a dialog when the
// coordinator answers 401, sent as a bearer header (never in a URL).
import { $ } from './dom.js';

const TOKEN_KEY = 'nightshift.apiToken';

export const getToken = () => {
  try {
    return localStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
};

/** @returns {Record<string, string>} */
export const authHeaders = () => (getToken() ? { authorization: `Bearer ${getToken()}` } : {});

/** @type {Promise<string | null> | null} */
let tokenPrompt = null;

/**
 * Asks for the API token once (concurrent callers share the dialog). Resolves to the token or null.
 * @param {boolean} rejected whether the stored token was just refused
 * @returns {Promise<string | null>}
 */
export function askToken(rejected) {
  if (tokenPrompt) return tokenPrompt;
  tokenPrompt = new Promise((resolve) => {
    const dlg = $('#auth-dialog', HTMLDialogElement);
    const form = $('#auth-form', HTMLFormElement);
    const input = $('#auth-token', HTMLInputElement);
    const err = $('#auth-error');
    err.textContent = rejected ? 'That token was refused. Check NIGHTSHIFT_API_TOKEN on the coordinator.' : '';
    input.setAttribute('aria-invalid', rejected ? 'true' : 'false');
    input.value = '';
    /** @param {string | null} value */
    const done = (value) => {
      form.removeEventListener('submit', onSubmit);
      dlg.removeEventListener('close', onClose);
      tokenPrompt = null;
      resolve(value);
    };
    /** @param {SubmitEvent} ev */
    const onSubmit = (ev) => {
      ev.preventDefault();
      const v = input.value.trim();
      if (!v) {
        err.textContent = 'Enter the token.';
        return;
      }
      localStorage.setItem(TOKEN_KEY, v);
      updateForgetButton();
      done(v);
      dlg.close();
    };
    const onClose = () => done(null);
    form.addEventListener('submit', onSubmit);
    dlg.addEventListener('close', onClose);
    dlg.showModal();
    input.focus();
  });
  return tokenPrompt;
}

/** Shows "Forget API token" only while one is stored. */
export function updateForgetButton() {
  const b = document.querySelector('#forget-token');
  if (b instanceof HTMLElement) b.hidden = !getToken();
}

export function setupForgetButton() {
  updateForgetButton();
  $('#forget-token').addEventListener('click', () => {
    localStorage.removeItem(TOKEN_KEY);
    location.reload();
  });
}
