import { type ArchivedFile, parseKey } from "./layout";

/**
 * Per `<folder>/<hour>`, the offsets that completed files hold: listed from the destination the first time an
 * hour is asked for (a listing in progress is shared), then kept as the archive completes files.
 */
export function createListings(list: (folder: string, prefix: string) => Promise<string[]>) {
  const archived = new Map<string, ArchivedFile[] | Promise<ArchivedFile[]>>();
  return {
    /** The hour's files: at once when listed, else the listing's promise. */
    filesOf(folder: string, hour: string) {
      const key = `${folder}/${hour}`;
      let files = archived.get(key);
      if (!files) {
        if (archived.size > 10_000) archived.clear();
        const listed = list(folder, `${key}/`).then((keys) => {
          const parsed = keys.flatMap((name) => parseKey(name) ?? []);
          if (archived.get(key) === listed) archived.set(key, parsed);
          return parsed;
        });
        listed.catch(() => archived.delete(key));
        archived.set(key, listed);
        files = listed;
      }
      return files;
    },
    /** Forgets every listing: another member may have completed files meanwhile. */
    clear: () => archived.clear(),
  };
}
