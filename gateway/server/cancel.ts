/**
 * A per-call cancellation, lighter than AbortController (no EventTarget, no DOMException): the
 * client went away before its answer was complete, so whatever is in flight for it stops.
 */
import type { CallSignal } from "../ports.ts";

export type { CallSignal };

export class CallCancel implements CallSignal {
  aborted = false;
  #fns: (() => void)[] | undefined;

  /** listeners run once, on abort (as `{ once: true }` on an AbortSignal); none after it */
  addEventListener(_type: "abort", fn: () => void): void {
    if (this.aborted) return;
    if (this.#fns) this.#fns.push(fn);
    else this.#fns = [fn];
  }

  removeEventListener(_type: "abort", fn: () => void): void {
    const i = this.#fns?.indexOf(fn) ?? -1;
    if (i >= 0) this.#fns!.splice(i, 1);
  }

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    const fns = this.#fns;
    this.#fns = undefined;
    if (fns) for (const fn of fns) fn();
  }
}
