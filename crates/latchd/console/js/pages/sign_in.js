// Sign in with an API token. The token goes to latchd once, in a header;
// the page keeps nothing of it (the field is emptied at once), and the
// session lives in an HttpOnly cookie.

import * as api from '../api.js';
import { el, field } from '../dom.js';

export function signInPage({ message, onSignedIn }) {
  const token = el('input', {
    type: 'password',
    name: 'token',
    // Not a password a manager should offer to keep.
    autocomplete: 'one-time-code',
    spellcheck: false,
    required: true,
    attrs: { autocapitalize: 'off' },
  });
  const status = el('p', { attrs: { role: 'alert' }, class: message ? 'notice' : '', text: message || '' });
  const submit = el('button', { type: 'submit', text: 'Sign in' });
  const form = el('form', {
    on: {
      submit: async (event) => {
        event.preventDefault();
        const presented = token.value.trim();
        token.value = '';
        if (!presented) return;
        submit.disabled = true;
        status.className = 'muted';
        status.textContent = 'Signing in…';
        try {
          onSignedIn(await api.signIn(presented));
        } catch (error) {
          status.className = 'error';
          status.textContent = error.status === 401
            ? `That token was not accepted: ${error.message}`
            : error.message;
          token.focus();
        } finally {
          submit.disabled = false;
        }
      },
    },
  },
  field('API token', token, 'A Latch token (latch_…) of an administrator or auditor. It is sent once to open a session and not kept by this page.'),
  submit);
  return el('div', { class: 'sign-in panel' }, el('h1', { text: 'Sign in to Latch' }), status, form);
}
