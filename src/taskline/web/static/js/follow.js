/**
 * Keep a scroll box on its newest (last) item while the person is there: if they scroll up
 * to read, it stays where they put it; back at the bottom, it follows again.
 *
 * Nothing here forces a layout: whether to follow is learnt from scroll events, and the box
 * is moved from a ResizeObserver on its content, whose callbacks run after the browser's own
 * layout of the frame, when sizes are known. Items removed above the view while the person
 * reads are handled by the browser's scroll anchoring.
 * @module follow
 */

/** How close to the bottom (px) still counts as "at the bottom". */
const SLACK = 8;

export class Follow {
  /**
   * @param {HTMLElement} box a scrolling element
   * @param {HTMLElement} content the element inside it that grows
   */
  constructor(box, content) {
    this.box = box;
    this.following = true;
    box.addEventListener(
      'scroll',
      () => {
        this.following = box.scrollHeight - box.scrollTop - box.clientHeight < SLACK;
      },
      { passive: true },
    );
    new ResizeObserver(() => {
      if (this.following) box.scrollTop = box.scrollHeight;
    }).observe(content);
  }

  /** Follow again (e.g. after the list was rebuilt for a new task or filter). */
  reset() {
    this.following = true;
  }
}
