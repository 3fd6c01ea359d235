// The live event feed: the latest events, then each new one as it is
// appended (a long poll on GET /v1/events?wait=…), until the page changes.

import * as api from '../api.js';
import { el, badge } from '../dom.js';
import { when, actor } from '../format.js';

const BACKLOG = 50;

export async function eventsPage(ctx) {
  if (!ctx.can('events:read')) {
    return el('div', {}, el('h1', { text: 'Live events' }),
      el('p', { class: 'notice', text: 'This needs the events:read permission.' }));
  }
  const feed = el('ol', { class: 'feed', attrs: { 'aria-live': 'polite', 'aria-relevant': 'additions' }, reversed: true });
  const state = el('p', { class: 'muted feed-state', text: 'Connecting…' });
  const first = await api.get('/v1/events?limit=1', { signal: ctx.signal });
  let after = Math.max(0, first.head - BACKLOG);
  const add = (events) => {
    for (const e of events) {
      feed.prepend(el('li', { dataset: { type: e.type } },
        el('span', { class: 'muted', text: `#${e.position} ${when(e.at)} ` }),
        badge(e.type, e.type.endsWith('revoked') || e.type.endsWith('disabled') ? 'revoked' : 'event'),
        ` ${e.summary} `,
        el('span', { class: 'muted', text: `by ${actor(e.actor)}` })));
    }
    while (feed.children.length > 500) feed.lastChild.remove();
  };
  const follow = async () => {
    let failures = 0;
    while (!ctx.signal.aborted) {
      try {
        const page = await api.get(`/v1/events${api.query({ after, limit: 200, wait: after >= first.head ? '25s' : null })}`, { signal: ctx.signal });
        add(page.events);
        after = page.next_after;
        first.head = page.head;
        failures = 0;
        state.textContent = `Live: following the log (position ${page.head}).`;
      } catch (error) {
        if (ctx.signal.aborted || error.status === 401) return;
        failures += 1;
        state.textContent = `Connection lost (${error.message}); retrying…`;
        await new Promise((resolve) => setTimeout(resolve, Math.min(30000, 1000 * 2 ** failures)));
      }
    }
  };
  follow();
  return el('div', {}, el('h1', { text: 'Live events' }), state, feed);
}
