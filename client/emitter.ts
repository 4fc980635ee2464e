// Emitter: a tiny typed event emitter (browser-safe; node:events is not available everywhere).

export type Listener<T> = (ev: T) => void;

export class Emitter<E extends object> {
  private readonly listeners = new Map<keyof E, Set<Listener<any>>>();

  /** Adds a listener; returns its unsubscribe function. */
  on<K extends keyof E>(event: K, fn: Listener<E[K]>): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    // Wrap so that subscribing the same function twice gives two independent subscriptions.
    const entry: Listener<E[K]> = (ev) => fn(ev);
    set.add(entry);
    return () => {
      set!.delete(entry);
      if (set!.size === 0 && this.listeners.get(event) === set) this.listeners.delete(event);
    };
  }

  /**
   * Calls the listeners registered before this emit (a listener added during the emit waits
   * for the next one). A throwing listener does not stop the others nor the caller's frame
   * loop; its error is rethrown asynchronously, like DOM EventTarget does.
   */
  emit<K extends keyof E>(event: K, ev: E[K]): void {
    const set = this.listeners.get(event);
    if (!set || set.size === 0) return;
    if (set.size === 1) {
      // The common case, without the snapshot copy (hot path under load).
      call(set.values().next().value!, ev);
      return;
    }
    for (const fn of Array.from(set)) {
      if (set.has(fn)) call(fn, ev); // skip one removed by an earlier listener of this emit
    }
  }

  listenerCount(event: keyof E): number {
    return this.listeners.get(event)?.size ?? 0;
  }
}

function call<T>(fn: Listener<T>, ev: T): void {
  try {
    fn(ev);
  } catch (err) {
    setTimeout(() => {
      throw err;
    }, 0);
  }
}
