// Waiting on events, never on the clock: a condition is checked now and
// again after each event that could change it. The time limit only bounds a
// failure.

/**
 * Resolves once `condition()` is truthy (with its value), checking after
 * every event named in `events` emitted by `emitter`.
 */
export function until(emitter, events, condition, { timeout = 20_000, what = 'condition' } = {}) {
  return new Promise((resolve, reject) => {
    const offs = [];
    const finish = (error, value) => {
      clearTimeout(timer);
      for (const off of offs) off();
      if (error) reject(error);
      else resolve(value);
    };
    const check = () => {
      let value;
      try {
        value = condition();
      } catch (error) {
        finish(error);
        return;
      }
      if (value) finish(null, value);
    };
    const timer = setTimeout(() => finish(new Error(`timed out after ${timeout} ms waiting for ${what}`)), timeout);
    for (const event of [].concat(events)) offs.push(emitter.on(event, check));
    check();
  });
}

/** The first argument of the next `event` whose arguments satisfy `predicate`. */
export function next(emitter, event, predicate = () => true, { timeout = 20_000 } = {}) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`timed out after ${timeout} ms waiting for event ${event}`));
    }, timeout);
    const off = emitter.on(event, (...args) => {
      if (!predicate(...args)) return;
      clearTimeout(timer);
      off();
      resolve(args[0]);
    });
  });
}
