// The room shown: its messages in seq order (updated in place, so screen
// readers announce only what is new), the writes not acknowledged yet,
// older messages a page at a time when the reader scrolls to the top, and
// marking the room read once its newest message is on screen, which the
// relay passes on to every tab and device of the user. The list's first
// item is the edge of the history ("Load older messages", or "This is the
// start of #room"), so it scrolls away with the messages; day separators
// (days.js) go before each day's first message.

import { atEachMidnight, syncDays } from './days.js';
import { bodyText, deleteConfirmation, editForm, failureToast, messageItem, pendingItem, prependKeepingScroll, toast } from './render.js';

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
  const edge = $('history-edge');
  /**
   * room → the seqs whose body changed while this page held them. A
   * moderation tool that replaces a document may leave no edited_at, and
   * the reader should still see that the text is not what it was.
   */
  const changed = new Map();

  function messageNode(message) {
    return messageItem(message, {
      mine: message.author === page.me(),
      changed: changed.get(message.room)?.has(message.seq) ?? false,
      onEdit: () => startEdit(message),
      onDelete: () => confirmDelete(message),
    });
  }

  function render() {
    const room = page.room();
    const note = room ? page.note(room) : undefined;
    $('room-note').hidden = !note;
    $('room-note').textContent = note ?? '';
    list.replaceChildren(edge, ...(room ? page.client().messages(room).map(messageNode) : []));
    renderPending();
    renderHistoryEdge();
    list.scrollTop = list.scrollHeight;
    markSeenRead();
  }

  /** Notes a message whose body is not the one shown before (`previous`: the version it replaces). */
  function noteChange(message, previous) {
    if (!previous || message.deleted || JSON.stringify(message.body) === JSON.stringify(previous.body)) return;
    if (!changed.has(message.room)) changed.set(message.room, new Set());
    changed.get(message.room).add(message.seq);
  }

  /** Inserts or replaces one message, keeping seq order; `previous` is the version it replaces, if any. */
  function renderMessage(message, { previous } = {}) {
    noteChange(message, previous);
    if (message.room !== page.room()) return;
    const nearEnd = isNearEnd();
    const node = messageNode(message);
    const existing = list.querySelector(`li[data-seq="${message.seq}"]`);
    if (existing) {
      existing.replaceWith(node);
    } else {
      const after = [...list.querySelectorAll('li[data-seq]')].find((item) => Number(item.dataset.seq) > message.seq);
      list.insertBefore(node, after ?? list.querySelector('li.pending'));
    }
    syncDays(list);
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
    syncDays(list);
    updateEmpty();
  }

  function updateEmpty() {
    const room = page.room();
    $('messages-empty').hidden = list.querySelector('li.message') !== null || !room || page.client().room(room).hasOlder;
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
    edge.hidden = room === null;
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
      // Below the edge, above the first day separator or message.
      prependKeepingScroll(list, fresh.map(messageNode), edge.nextElementSibling, () => syncDays(list));
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

  /** Deleting is for everyone and cannot be undone: ask first, in place of the message's actions. */
  function confirmDelete(message) {
    const node = list.querySelector(`li[data-seq="${message.seq}"]`);
    const actions = node?.querySelector('.actions');
    if (!actions || node.querySelector('.confirm')) return;
    const { row, cancel } = deleteConfirmation({
      onConfirm: () => {
        row.querySelectorAll('button').forEach((button) => (button.disabled = true));
        // The deletion comes back from the relay and replaces the whole item.
        page.client().delete(message.room, message.id).catch((error) => {
          toast($('toasts'), error.message);
          row.remove();
          actions.hidden = false;
        });
      },
      onCancel: () => {
        row.remove();
        actions.hidden = false;
        actions.querySelector('.danger')?.focus();
      },
    });
    actions.hidden = true;
    node.append(row);
    cancel.focus();
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
    // Only a list that overflows was scrolled by the reader: emptied for
    // another room, it scrolls to 0 by itself before that room's messages come.
    if (list.scrollTop < NEAR_TOP && list.scrollHeight > list.clientHeight) loadOlder();
    markSeenRead();
  });
  // Back to the tab: the newest messages are on screen now.
  document.addEventListener('visibilitychange', markSeenRead);
  atEachMidnight(() => syncDays(list));

  function renderEdges() {
    renderHistoryEdge();
    updateEmpty();
  }

  function clear() {
    changed.clear();
    list.replaceChildren(edge);
  }

  return { render, renderMessage, renderPending, renderEdges, clear };
}
