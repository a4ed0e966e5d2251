// The room shown: its messages in seq order (updated in place, so screen
// readers announce only what is new), the writes not acknowledged yet,
// older messages a page at a time when the reader scrolls to the top, and
// marking the room read once its newest message is on screen, which the
// relay passes on to every tab and device of the user.

import { bodyText, editForm, failureToast, messageItem, pendingItem, prependKeepingScroll, toast } from './render.js';

const $ = (id) => document.getElementById(id);
/** Older messages fetched per page. */
const PAGE = 50;
/** Scrolled this close to the top (px), the list fetches older messages. */
const NEAR_TOP = 48;
/** Scrolled this close to the end (px), the newest message counts as seen. */
const NEAR_END = 80;

/**
 * `page` is what the conversation reads of the rest of the page: client(),
 * me(), room() (the room shown, or null) and note(room), a warning about
 * the room's history.
 */
export function conversation(page) {
  /** The room whose older messages are being fetched. */
  let loadingOlder = null;
  const list = $('messages');

  function messageNode(message) {
    const client = page.client();
    return messageItem(message, {
      mine: message.author === page.me(),
      onEdit: () => startEdit(message),
      onDelete: () => client.delete(message.room, message.id).catch((error) => toast($('toasts'), error.message)),
    });
  }

  function render() {
    const room = page.room();
    const note = room ? page.note(room) : undefined;
    $('room-note').hidden = !note;
    $('room-note').textContent = note ?? '';
    list.replaceChildren(...(room ? page.client().messages(room).map(messageNode) : []));
    renderPending();
    renderHistoryEdge();
    list.scrollTop = list.scrollHeight;
    markSeenRead();
  }

  /** Inserts or replaces one message, keeping seq order. */
  function renderMessage(message) {
    const nearEnd = isNearEnd();
    const node = messageNode(message);
    const existing = list.querySelector(`li[data-seq="${message.seq}"]`);
    if (existing) {
      existing.replaceWith(node);
    } else {
      const after = [...list.querySelectorAll('li[data-seq]')].find((item) => Number(item.dataset.seq) > message.seq);
      list.insertBefore(node, after ?? list.querySelector('li.pending'));
    }
    updateEmpty();
    if (nearEnd || message.author === page.me()) list.scrollTop = list.scrollHeight;
    markSeenRead();
  }

  function renderPending() {
    for (const node of list.querySelectorAll('li.pending')) node.remove();
    const room = page.room();
    if (room) {
      for (const write of page.client().pending(room)) {
        if (write.kind === 'send') list.append(pendingItem(write, page.me()));
      }
    }
    updateEmpty();
  }

  function updateEmpty() {
    const room = page.room();
    $('messages-empty').hidden = list.children.length > 0 || !room || page.client().room(room).hasOlder;
  }

  function isNearEnd() {
    return list.scrollHeight - list.scrollTop - list.clientHeight < NEAR_END;
  }

  /**
   * Marks the room read up to its newest message when that is on screen:
   * the page is visible and the list is scrolled to its end.
   */
  function markSeenRead() {
    const client = page.client();
    const room = page.room();
    if (!client || !room || document.visibilityState !== 'visible' || !isNearEnd()) return;
    const newest = client.messages(room).at(-1);
    if (newest) client.markRead(room, newest.seq);
  }

  /** What is above the oldest message: a way to load older ones, or the start of the room. */
  function renderHistoryEdge() {
    const room = page.room();
    const more = room !== null && page.client().room(room).hasOlder;
    $('load-older').hidden = !more;
    $('load-older').disabled = loadingOlder === room;
    $('history-start').hidden = more || room === null;
    $('history-start').textContent = room ? `This is the start of #${room}.` : '';
  }

  /** Fetches the page before the oldest message shown and puts it above, without moving what the reader sees. */
  async function loadOlder() {
    const client = page.client();
    const room = page.room();
    if (!client || !room || loadingOlder === room || !client.room(room).hasOlder) return;
    loadingOlder = room;
    renderHistoryEdge();
    $('history-status').textContent = 'Loading older messages…';
    try {
      const { messages } = await client.room(room).loadOlder({ limit: PAGE });
      if (room !== page.room()) return;
      const fresh = messages.filter((message) => !list.querySelector(`li[data-seq="${message.seq}"]`));
      prependKeepingScroll(list, fresh.map(messageNode), list.querySelector('li[data-seq], li.pending'));
      updateEmpty();
      $('history-status').textContent = fresh.length ? `${fresh.length} older messages loaded.` : '';
    } catch (error) {
      $('history-status').textContent = '';
      failureToast($('toasts'), `Cannot load older messages of ${room}`)(error);
    } finally {
      if (loadingOlder === room) loadingOlder = null;
      renderHistoryEdge();
    }
  }

  function startEdit(message) {
    const client = page.client();
    const node = list.querySelector(`li[data-seq="${message.seq}"]`);
    if (!node) return;
    const restore = () => node.replaceWith(messageNode(client.messages(message.room).find((m) => m.seq === message.seq) ?? message));
    const { form, input } = editForm(bodyText(message.body), {
      onSave: (text) => {
        if (!text.trim()) return;
        client.edit(message.room, message.id, { text: text.trim() }).catch((error) => {
          toast($('toasts'), error.message);
          restore();
        });
        // The edited message comes back from the relay and replaces the form.
        form.querySelectorAll('button, input').forEach((control) => (control.disabled = true));
      },
      onCancel: restore,
    });
    node.querySelector('.body').replaceWith(form);
    node.querySelector('.actions')?.remove();
    input.focus();
    input.select();
  }

  $('load-older').addEventListener('click', loadOlder);
  list.addEventListener('scroll', () => {
    if (list.scrollTop < NEAR_TOP) loadOlder();
    markSeenRead();
  });
  // Back to the tab: the newest messages are on screen now.
  document.addEventListener('visibilitychange', markSeenRead);

  function renderEdges() {
    renderHistoryEdge();
    updateEmpty();
  }

  return { render, renderMessage, renderPending, renderEdges, clear: () => list.replaceChildren() };
}
