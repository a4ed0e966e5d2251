// DOM rendering for the demo. Lists are updated in place, keyed by seq or
// id, so screen readers announce only what is new.

import { dayKey } from './days.js';

const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });
const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'medium' });

export function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === 'class') node.className = value;
    else if (name.startsWith('on')) node.addEventListener(name.slice(2), value);
    else if (name === 'dataset') Object.assign(node.dataset, value);
    else node.setAttribute(name, value === true ? '' : value);
  }
  node.append(...children.flat().filter((child) => child !== null && child !== undefined && child !== false));
  return node;
}

/** A message body as text: `{text}` bodies from this page, JSON for anything else. */
export function bodyText(body) {
  if (body && typeof body === 'object' && typeof body.text === 'string') return body.text;
  if (typeof body === 'string') return body;
  // A stub (too_large) has no body at all.
  return body === undefined ? '' : JSON.stringify(body);
}

function timeElement(iso) {
  if (!iso) return null;
  const date = new Date(iso);
  return element('time', { datetime: iso, title: dateFormat.format(date) }, timeFormat.format(date));
}

/** The start of a text, on one line, to name a message by what the reader sees of it. */
function snippet(text, length = 40) {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > length ? `${line.slice(0, length - 1).trimEnd()}…` : line;
}

/**
 * How the Edit and Delete buttons name their message to a screen reader:
 * by the start of its text, or for a stub (no text) by its time.
 */
function messageName(message) {
  const text = message.too_large ? '' : snippet(bodyText(message.body));
  if (text) return `“${text}”`;
  return message.sent_at ? `your message of ${timeFormat.format(new Date(message.sent_at))}` : 'your message';
}

/** The marker of a message whose text changed: edited by its author (edited_at), or replaced by another program (`changed`). */
function editedMarker(message, changed) {
  if (message.deleted || !(message.edited_at || changed)) return null;
  const title = message.edited_at ? `edited ${dateFormat.format(new Date(message.edited_at))}` : 'changed since it was first shown';
  return element('span', { class: 'edited', title }, '(edited)');
}

/**
 * The <li> of a stored message; `actions` are shown on your own, not
 * deleted, messages (no Edit on a stub: there is no body to start from).
 * `changed`: its body changed while shown, even with no edited_at.
 */
export function messageItem(message, { mine, changed = false, onEdit, onDelete }) {
  const name = messageName(message);
  const actions =
    mine && !message.deleted
      ? element(
          'div',
          { class: 'actions' },
          message.too_large ? null : element('button', { type: 'button', class: 'link', onclick: onEdit, 'aria-label': `Edit ${name}` }, 'Edit'),
          element('button', { type: 'button', class: 'link danger', onclick: onDelete, 'aria-label': `Delete ${name}` }, 'Delete'),
        )
      : null;
  const meta = element(
    'div',
    { class: 'meta' },
    element('span', { class: 'author' }, message.author),
    timeElement(message.sent_at),
    editedMarker(message, changed),
    actions,
  );
  const body = message.deleted
    ? element('p', { class: 'body deleted' }, 'Message deleted')
    : message.too_large
      ? element('p', { class: 'body deleted' }, 'Message too large to show')
      : element('p', { class: 'body' }, bodyText(message.body));
  return element(
    'li',
    {
      class: `message${mine ? ' mine' : ''}${message.deleted ? ' is-deleted' : ''}`,
      // The day it was sent, for the day separators (days.js).
      dataset: { seq: message.seq, id: message.id, ...(message.sent_at ? { day: dayKey(new Date(message.sent_at)) } : {}) },
    },
    meta,
    body,
  );
}

/** A write the relay has not acknowledged yet. */
export function pendingItem(write, user) {
  const label = write.state === 'waiting' ? 'retrying…' : 'sending…';
  return element(
    'li',
    // Not committed yet: it will be sent today.
    { class: 'message mine pending', dataset: { clientId: write.clientId, day: dayKey(new Date()) } },
    element('div', { class: 'meta' }, element('span', { class: 'author' }, user), element('span', { class: 'status' }, label)),
    element('p', { class: 'body' }, bodyText(write.body)),
  );
}

/** An inline editor replacing a message's body. */
export function editForm(text, { onSave, onCancel }) {
  const input = element('input', { class: 'edit-input', value: text, 'aria-label': 'Edit message', maxlength: 4000 });
  input.value = text;
  const form = element(
    'form',
    { class: 'edit-form', onsubmit: (event) => (event.preventDefault(), onSave(input.value)) },
    input,
    element('button', { type: 'submit', class: 'primary small' }, 'Save'),
    element('button', { type: 'button', class: 'secondary small', onclick: onCancel }, 'Cancel'),
  );
  input.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') onCancel();
  });
  return { form, input };
}

let confirmations = 0;

/**
 * Asks before deleting a message: a row under it, focused on Cancel, the
 * safe choice; Escape cancels too.
 */
export function deleteConfirmation({ onConfirm, onCancel }) {
  const question = element('span', { class: 'question' }, 'Delete this message for everyone?');
  const cancel = element('button', { type: 'button', class: 'secondary small', onclick: onCancel }, 'Cancel');
  const row = element(
    'div',
    { class: 'confirm', role: 'group' },
    question,
    element('button', { type: 'button', class: 'danger small', onclick: onConfirm }, 'Yes, delete'),
    cancel,
  );
  confirmations += 1;
  question.id = `confirm-delete-${confirmations}`;
  row.setAttribute('aria-labelledby', question.id);
  row.addEventListener('keydown', (event) => {
    if (event.key === 'Escape') onCancel();
  });
  return { row, cancel };
}

function notificationText(data) {
  for (const key of ['text', 'message', 'title', 'body']) {
    if (typeof data[key] === 'string') return data[key];
  }
  const { _id, user, ...rest } = data;
  return JSON.stringify(rest);
}

function notificationTime(notification) {
  const at = notification.data?.at;
  if (typeof at === 'string') return at;
  if (at && typeof at.$date === 'string') return at.$date;
  // An ObjectId starts with its creation time in seconds.
  const seconds = Number.parseInt(notification.id.slice(0, 8), 16);
  return Number.isFinite(seconds) ? new Date(seconds * 1000).toISOString() : null;
}

export function notificationItem(notification) {
  const kind = typeof notification.data?.kind === 'string' ? notification.data.kind : null;
  // A document too large to relay arrives as a stub, without its data.
  const text = notification.too_large ? 'Notification too large to show' : notificationText(notification.data);
  return element(
    'li',
    { class: 'notification', dataset: { id: notification.id } },
    element('div', { class: 'meta' }, kind ? element('span', { class: 'kind' }, kind) : null, timeElement(notificationTime(notification))),
    element('p', { class: 'body' }, text),
  );
}

/** A short-lived message for the person, announced by screen readers. */
export function toast(container, text, tone = 'error') {
  const item = element('div', { class: `toast ${tone}` }, text);
  container.append(item);
  setTimeout(() => item.remove(), 6000);
}

/** A rejection handler: a toast saying what failed, unless the client was closed on purpose (signing out). */
export function failureToast(container, what) {
  return (error) => {
    if (error.code !== 'closed') toast(container, `${what}: ${error.message}`);
  };
}

/**
 * Inserts `nodes` before `before` (at the end when null) in a scrolled
 * list, so that what the reader sees stays put: the distance from the
 * bottom is kept. aria-busy makes screen readers skip announcing each one.
 * `arrange` makes the other changes above (the day separators) first.
 */
export function prependKeepingScroll(list, nodes, before, arrange = () => {}) {
  if (!nodes.length) return;
  const fromBottom = list.scrollHeight - list.scrollTop;
  list.setAttribute('aria-busy', 'true');
  const fragment = document.createDocumentFragment();
  fragment.append(...nodes);
  list.insertBefore(fragment, before);
  arrange();
  list.scrollTop = list.scrollHeight - fromBottom;
  list.removeAttribute('aria-busy');
}
