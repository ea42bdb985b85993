import { bomLength, CR, LF, Pending, QUOTE, type SplitSink, type Splitter, tooLarge } from "./pending";

const BACKSLASH = 92;
const COMMA = 44;
const OPEN_ARRAY = 91;
const CLOSE_ARRAY = 93;
const OPEN_OBJECT = 123;
const CLOSE_OBJECT = 125;

const isSpace = (c: number) => c === 32 || c === 9 || c === LF || c === CR || c === 11 || c === 12;

/** Blank as the gateway's `line.trim()` sees it, Unicode spaces included. */
function isBlank(bytes: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) {
    const c = bytes[i] as number;
    if (c >= 0x80) return Buffer.from(bytes.subarray(start, end)).toString("utf8").trim() === "";
    if (!isSpace(c)) return false;
  }
  return true;
}

const empty = new Uint8Array(0);

/** NDJSON: one record per LF-ended line; blank lines are skipped, as the gateway skips them. */
export function ndjsonSplitter(sink: SplitSink, limit: number): Splitter {
  let line = 1;
  let first = true;
  const pending = new Pending(limit);
  const endLine = (chunk: Uint8Array, start: number, end: number) => {
    const size = pending.size + end - start;
    if (size > limit) sink.refuse(line, tooLarge(size, limit));
    else {
      const joined = pending.join(chunk, start, end);
      const [bytes, from, to] = joined ? [joined, 0, joined.length] : [chunk, start, end];
      if (!isBlank(bytes, from, to)) sink.record(bytes, from, to, line);
    }
    pending.reset();
  };
  return {
    push(chunk) {
      const buffer = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
      let i = first ? bomLength(chunk) : 0;
      first = false;
      for (;;) {
        const lf = buffer.indexOf(LF, i);
        if (lf < 0) break;
        if (pending.size === 0) {
          // The usual case, without an array per line.
          if (lf - i > limit) sink.refuse(line, tooLarge(lf - i, limit));
          else if (!isBlank(chunk, i, lf)) sink.record(chunk, i, lf, line);
        } else endLine(chunk, i, lf);
        line++;
        i = lf + 1;
      }
      pending.add(chunk, i, chunk.length);
    },
    end() {
      if (pending.size > 0) endLine(empty, 0, 0);
    },
  };
}

type Phase = "start" | "between" | "element" | "after" | "done";

/**
 * A top-level JSON array, element by element, without parsing it: strings and their escapes are followed
 * so that commas and brackets inside them do not count. Each element is sent as one NDJSON line; its line
 * breaks (whitespace between tokens) become spaces, and one with a raw line break inside a string, which is
 * not JSON, is refused at its line. Elements are checked by the gateway, one by one.
 */
export function jsonArraySplitter(sink: SplitSink, limit: number): Splitter {
  let line = 1;
  let phase: Phase = "start";
  let elementLine = 1;
  let depth = 0;
  let inString = false;
  let escaped = false;
  let breaks = false;
  let breakInString = false;
  let afterComma = false;
  let first = true;
  const pending = new Pending(limit);

  const endElement = (chunk: Uint8Array, start: number, end: number) => {
    const size = pending.size + end - start;
    if (size > limit) sink.refuse(elementLine, tooLarge(size, limit));
    else if (breakInString) sink.refuse(elementLine, "not valid JSON: a line break inside a string");
    else {
      let bytes = pending.join(chunk, start, end) ?? chunk.subarray(start, end);
      let stop = bytes.length;
      while (stop > 0 && isSpace(bytes[stop - 1] as number)) stop--;
      bytes = bytes.subarray(0, stop);
      if (breaks) {
        bytes = new Uint8Array(bytes);
        for (let k = 0; k < bytes.length; k++) if (bytes[k] === LF || bytes[k] === CR) bytes[k] = 32;
      }
      sink.record(bytes, 0, bytes.length, elementLine);
    }
    pending.reset();
    breaks = false;
    breakInString = false;
  };

  return {
    push(chunk) {
      const n = chunk.length;
      let i = first ? bomLength(chunk) : 0;
      first = false;
      let start = -1;
      for (; i < n; i++) {
        const c = chunk[i] as number;
        if (phase === "element") {
          if (inString) {
            if (escaped) escaped = false;
            else if (c === BACKSLASH) escaped = true;
            else if (c === QUOTE) inString = false;
            else if (c === LF || c === CR) breakInString = true;
          } else if (c === QUOTE) inString = true;
          else if (c === OPEN_ARRAY || c === OPEN_OBJECT) depth++;
          else if ((c === CLOSE_ARRAY || c === CLOSE_OBJECT) && depth > 0) depth--;
          else if (c === COMMA && depth === 0) {
            endElement(chunk, Math.max(start, 0), i);
            phase = "between";
            afterComma = true;
          } else if (c === CLOSE_ARRAY) {
            endElement(chunk, Math.max(start, 0), i);
            phase = "after";
          } else if (c === LF || c === CR) breaks = true;
        } else if (isSpace(c)) {
          // Whitespace between elements.
        } else if (phase === "start") {
          if (c !== OPEN_ARRAY) {
            sink.refuse(line, "a JSON file must hold one top-level array; nothing of it was sent");
            phase = "done";
          } else phase = "between";
        } else if (phase === "between") {
          if (c === COMMA || (c === CLOSE_ARRAY && afterComma)) sink.refuse(line, "an empty array element");
          if (c === CLOSE_ARRAY) phase = "after";
          else if (c !== COMMA) {
            phase = "element";
            start = i;
            elementLine = line;
            depth = 0;
            inString = false;
            escaped = false;
            i--; // read this byte again as the element's first
            continue;
          }
          afterComma = c === COMMA;
        } else if (phase === "after") {
          sink.refuse(line, "content after the end of the top-level array; it was not sent");
          phase = "done";
        }
        if (c === LF) line++;
      }
      if (phase === "element") pending.add(chunk, Math.max(start, 0), n);
    },
    end() {
      if (phase === "element") {
        sink.refuse(elementLine, "the file ends inside this element; the top-level array is not closed");
        pending.reset();
      } else if (phase === "between") {
        sink.refuse(line, "the file ends before the top-level array is closed");
      }
      phase = "done";
    },
  };
}
