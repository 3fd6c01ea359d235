// Confirmations. Every destructive action asks for a reason and a second,
// deliberate click, in a native <dialog> (focus stays inside, Escape
// cancels).

import { el, field } from './dom.js';

/**
 * Asks to confirm `title`; resolves to the reason typed (or '' when none is
 * asked for), or null when cancelled. `requireReason`: the confirm button
 * stays disabled until a reason is typed.
 */
export function confirmAction({ title, message, confirmLabel, danger = true, askReason = true, requireReason = true, extra = [] }) {
  return new Promise((resolve) => {
    const reason = el('textarea', { name: 'reason', required: requireReason, maxLength: 1000 });
    const confirm = el('button', {
      type: 'submit',
      class: danger ? 'danger' : '',
      text: confirmLabel,
      disabled: askReason && requireReason,
    });
    const cancel = el('button', { type: 'button', class: 'secondary', text: 'Cancel' });
    reason.addEventListener('input', () => {
      confirm.disabled = requireReason && reason.value.trim() === '';
    });
    const form = el('form', { method: 'dialog' },
      el('h2', { text: title }),
      el('p', { text: message }),
      extra,
      askReason ? field('Reason', reason, requireReason ? 'Recorded in the event log for auditors.' : 'Optional; recorded in the event log.') : null,
      el('div', { class: 'buttons' }, cancel, confirm));
    const dialog = el('dialog', { attrs: { 'aria-label': title } }, form);
    let answer = null;
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      if (askReason && requireReason && reason.value.trim() === '') return;
      answer = askReason ? reason.value.trim() : '';
      dialog.close();
    });
    cancel.addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => {
      dialog.remove();
      resolve(answer);
    });
    document.body.append(dialog);
    dialog.showModal();
    (askReason ? reason : confirm).focus();
  });
}

/**
 * The one time a token's secret is shown: with a copy button and a warning.
 * It lives in this element only; leaving the page or reloading drops it.
 */
export function secretPanel(issued, onDone) {
  const output = el('output', { class: 'secret-value', attrs: { 'aria-label': 'The new token' }, text: issued.token });
  const status = el('span', { attrs: { role: 'status' } });
  const copy = el('button', {
    type: 'button',
    text: 'Copy',
    on: {
      click: async () => {
        try {
          await navigator.clipboard.writeText(issued.token);
          status.textContent = 'Copied.';
        } catch {
          const range = document.createRange();
          range.selectNodeContents(output);
          const selection = window.getSelection();
          selection.removeAllRanges();
          selection.addRange(range);
          status.textContent = 'Selected: press Ctrl+C (⌘C) to copy.';
        }
      },
    },
  });
  const panel = el('section', { class: 'notice warn secret-panel', attrs: { 'aria-labelledby': 'secret-title' } },
    el('h2', { id: 'secret-title', text: `Token "${issued.name}" issued` }),
    el('p', { text: 'Copy it now: this is the only time Latch shows it. It is not stored anywhere it can be read back; if you lose it, revoke it and issue another.' }),
    el('div', { class: 'secret' }, output, copy, status),
    el('p', {}, el('button', {
      type: 'button',
      class: 'secondary',
      text: 'I have stored it: hide it',
      on: { click: () => { panel.remove(); onDone && onDone(); } },
    })));
  return panel;
}
