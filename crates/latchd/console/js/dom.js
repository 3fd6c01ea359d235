// Building the page: every value goes in as text (textContent), never as
// markup, so nothing latchd returns can become script.

/**
 * el('a', { href: '#/x', class: 'c', text: 'hi', on: { click: f }, attrs: { 'aria-label': 'x' } }, child…)
 * Children: nodes, strings (as text), arrays; null, undefined and false are skipped.
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'text') node.textContent = String(value);
    else if (name === 'class') node.className = value;
    else if (name === 'on') for (const [event, handler] of Object.entries(value)) node.addEventListener(event, handler);
    else if (name === 'attrs') for (const [attr, v] of Object.entries(value)) { if (v !== undefined && v !== null && v !== false) node.setAttribute(attr, String(v)); }
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else node[name] = value;
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function replace(node, ...children) {
  node.replaceChildren();
  append(node, children);
}

/**
 * A table; columns: [{ label, cell: row => node or text }]. On a phone each
 * row becomes a card labelled by its columns.
 */
export function table(columns, rows, { empty = 'Nothing to show.', caption } = {}) {
  if (!rows.length) return el('p', { class: 'muted', text: empty });
  return el('div', { class: 'table-wrap' },
    el('table', { class: 'responsive' },
      caption ? el('caption', { class: 'visually-hidden', text: caption }) : null,
      el('thead', {}, el('tr', {}, columns.map((c) => el('th', { scope: 'col', text: c.label })))),
      el('tbody', {}, rows.map((row) => el('tr', {},
        columns.map((c) => el('td', { dataset: { label: c.label } }, c.cell(row))))))));
}

let fieldCount = 0;

/** A labelled input (or select, or textarea). */
export function field(label, control, hint) {
  fieldCount += 1;
  if (!control.id) control.id = `field-${fieldCount}`;
  return el('label', { htmlFor: control.id }, label, hint ? el('span', { class: 'hint', text: hint }) : null, control);
}

export function badge(text, kind = text) {
  return el('span', { class: `badge ${kind}`, text });
}

export function errorText(error) {
  return el('p', { class: 'error', attrs: { role: 'alert' }, text: error.message || String(error) });
}

/** Tells screen readers what just happened. */
export function announce(text) {
  const region = document.getElementById('announce');
  if (region) region.textContent = text;
}

export function link(href, text) {
  return el('a', { href, text });
}
