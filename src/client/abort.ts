/**
 * Watching a caller's AbortSignal from many calls at once. A service passes one shutdown signal to
 * every call and to `subscribe()`; a listener of its own per call in flight would add up on that
 * signal, and past 10 Node prints a MaxListenersExceededWarning ("possible memory leak") although
 * nothing leaks (QA qa-sdk2 #2). So each signal gets one listener, whatever the number of calls
 * watching it, which fans the abort out to them and is removed when the last one stops watching.
 * (`AbortSignal.any` adds no listener, but it needs Node ≥ 20.3, and on Node 20.20 a long-lived
 * source signal keeps something of every signal made from it: the heap grew by about 5 MB per 100,000
 * calls, for good.)
 */

interface Watchers {
  /** What to run on abort, one entry per `onAbort` call still watching. */
  readonly calls: Set<() => void>;
  /** The one listener on the signal. */
  readonly listener: () => void;
}

const watched = new WeakMap<AbortSignal, Watchers>();

/**
 * Run `f` once `signal` aborts (at once when it already has), until the function returned is called:
 * call that when the work `f` would stop is over, aborted or not. Adds at most one listener to
 * `signal`, however many calls watch it, and none once the last of them stopped watching.
 *
 * @example
 * const unwatch = onAbort(user, () => ctl.abort(user.reason));
 * try { return await fetch(url, { signal: ctl.signal }); } finally { unwatch(); }
 */
export function onAbort(signal: AbortSignal, f: () => void): () => void {
  if (signal.aborted) {
    f();
    return () => {};
  }
  let w = watched.get(signal);
  if (w === undefined) {
    const calls = new Set<() => void>();
    const listener = () => {
      watched.delete(signal);
      for (const call of calls) call();
      calls.clear();
    };
    w = { calls, listener };
    watched.set(signal, w);
    signal.addEventListener('abort', listener, { once: true });
  }
  const watchers = w;
  // Its own entry, so that the same `f` watching twice is two entries, each removed by its own call.
  const call = () => f();
  watchers.calls.add(call);
  return () => {
    if (!watchers.calls.delete(call) || watchers.calls.size > 0) return;
    signal.removeEventListener('abort', watchers.listener);
    if (watched.get(signal) === watchers) watched.delete(signal);
  };
}
