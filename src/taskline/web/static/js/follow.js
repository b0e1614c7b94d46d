/**
 * Keep a scroll box on its newest (last) item while the person is there: if they scroll up
 * to read, it stays where they put it; back at the bottom, it follows again.
 *
 * Whether to follow is learnt from scroll events (layout is clean then); the box is moved
 * only in {@link Follow#settle}, called once at the end of a frame's DOM writes, so a frame
 * lays out once. Rows removed above the view while reading are handled by the browser's
 * scroll anchoring.
 * @module follow
 */

/** How close to the bottom (px) still counts as "at the bottom". */
const SLACK = 8;

export class Follow {
  /** @param {HTMLElement} box a scrolling element */
  constructor(box) {
    this.box = box;
    this.following = true;
    box.addEventListener(
      'scroll',
      () => {
        this.following = box.scrollHeight - box.scrollTop - box.clientHeight < SLACK;
      },
      { passive: true },
    );
  }

  /** Follow again (e.g. after the list was rebuilt for a new task or filter). */
  reset() {
    this.following = true;
  }

  /** After the frame's DOM writes: show the newest item if following. */
  settle() {
    if (this.following) this.box.scrollTop = this.box.scrollHeight;
  }
}
