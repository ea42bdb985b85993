/** Work queued per slot (a partition), each piece after the one before it; a slot is busy while it has work. */
export function createSlots() {
  const tails = new Map<string, Promise<unknown>>();
  return {
    run<T>(slot: string, work: () => Promise<T>): Promise<T> {
      const done = (tails.get(slot) ?? Promise.resolve()).then(work);
      const settled = done.catch(() => {});
      tails.set(slot, settled);
      void settled.then(() => tails.get(slot) === settled && tails.delete(slot));
      return done;
    },
    busy: (slot: string) => tails.has(slot),
  };
}
