// The Latch console: signs in, then shows one page at a time, chosen by
// the URL's fragment (#/accounts, #/accounts/<id>, …). Fragments carry ids,
// never secrets. Every page reads and acts through the /v1 API, so the
// console can do exactly what the signed-in token may do, no more.

import * as api from './api.js';
import { el, replace, announce } from './dom.js';
import { millis, whenRelative } from './format.js';
import { signInPage } from './pages/sign_in.js';
import { accountsPage } from './pages/accounts.js';
import { accountPage } from './pages/account.js';
import { tokenStoryPage } from './pages/token_story.js';
import { rolesPage } from './pages/roles.js';
import { whoCanPage } from './pages/who_can.js';
import { attentionPage } from './pages/attention.js';
import { eventsPage } from './pages/events.js';

const top = document.getElementById('top');
const main = document.getElementById('main');

const sections = [
  { path: 'accounts', label: 'Accounts' },
  { path: 'attention', label: 'Stale & expiring' },
  { path: 'who-can', label: 'Who can' },
  { path: 'roles', label: 'Roles & policy' },
  { path: 'events', label: 'Live events' },
];

const routes = [
  [/^accounts$/, () => accountsPage],
  [/^accounts\/([0-9a-f-]{36})$/, (id) => (ctx) => accountPage(ctx, id)],
  [/^tokens\/([0-9a-f-]{36})$/, (id) => (ctx) => tokenStoryPage(ctx, id)],
  [/^roles$/, () => rolesPage],
  [/^who-can$/, () => whoCanPage],
  [/^attention$/, () => attentionPage],
  [/^events$/, () => eventsPage],
];

let session = null;
/** Aborted when the page changes: stops a page's requests (the live feed). */
let pageController = null;

/** Whether the signed-in token holds `wanted` (wildcards per segment). */
function can(wanted) {
  if (!session) return false;
  const [resource, action] = wanted.split(':');
  return session.permissions.some((held) => {
    const [r, a = '*'] = held === '*' ? ['*', '*'] : held.split(':');
    return (r === '*' || r === resource) && (a === '*' || a === action);
  });
}

function current() {
  const hash = window.location.hash;
  return hash.startsWith('#/') ? hash.slice(2) : 'accounts';
}

function header() {
  if (!session) {
    replace(top, el('span', { class: 'brand', text: 'Latch' }));
    return;
  }
  const here = current().split('/')[0];
  replace(top,
    el('span', { class: 'brand', text: 'Latch' }),
    el('nav', { attrs: { 'aria-label': 'Sections' } },
      el('ul', {}, sections.map((s) => el('li', {},
        el('a', { href: `#/${s.path}`, text: s.label, attrs: { 'aria-current': here === s.path ? 'page' : null } }))))),
    el('div', { class: 'who' },
      el('span', {
        text: `${session.account_name} · ${session.role}`,
        title: `token ${session.token_name}; session ends ${whenRelative(session.ends_at)}`,
      }),
      el('button', { type: 'button', class: 'secondary', text: 'Sign out', on: { click: signOut } })));
}

async function signOut() {
  await api.signOut();
  showSignIn('You are signed out.');
}

function showSignIn(message) {
  session = null;
  if (pageController) pageController.abort();
  header();
  document.title = 'Sign in · Latch console';
  replace(main, signInPage({ message, onSignedIn: (info) => { session = info; render(); } }));
  const input = main.querySelector('input');
  if (input) input.focus();
}

async function render() {
  if (!session) return;
  if (pageController) pageController.abort();
  pageController = new AbortController();
  header();
  const path = current();
  const match = routes.map(([pattern, page]) => [path.match(pattern), page]).find(([m]) => m);
  const ctx = { session, can, signal: pageController.signal, rerender: render };
  if (!match) {
    replace(main, el('h1', { text: 'No such page' }), el('p', {}, el('a', { href: '#/accounts', text: 'Go to the accounts' })));
    return;
  }
  const [found, page] = match;
  replace(main, el('p', { class: 'muted', text: 'Loading…' }));
  try {
    const content = await page(...found.slice(1))(ctx);
    if (ctx.signal.aborted || !session) return;
    replace(main, content);
    const heading = main.querySelector('h1');
    document.title = `${heading ? heading.textContent : 'Latch'} · Latch console`;
    main.focus();
    announce(document.title);
  } catch (error) {
    if (ctx.signal.aborted || !session) return;
    replace(main, el('h1', { text: 'Could not load this page' }), el('p', { class: 'error', attrs: { role: 'alert' }, text: error.message }));
  }
}

api.onSignedOut((reason) => {
  // Past its end the browser drops the cookie itself, and latchd only
  // hears a request without credentials: say what happened.
  const expired = session && Date.now() >= millis(session.ends_at) - 1000;
  showSignIn(expired ? 'Your session expired; sign in again.' : reason);
});
window.addEventListener('hashchange', () => {
  if (window.location.hash.startsWith('#/') || window.location.hash === '') render();
});

async function start() {
  session = await api.resume().catch(() => null);
  if (session) render();
  else showSignIn();
}

start();
