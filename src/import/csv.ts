import { bomLength, COMMA, CR, LF, Pending, QUOTE, type SplitSink, type Splitter, tooLarge } from "./pending";

/** True when some cell of a row without quotes is non-empty: a row of commas is blank. */
function plainRowHasContent(bytes: Uint8Array, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (bytes[i] !== COMMA) return true;
  return false;
}

const empty = new Uint8Array(0);

/**
 * Splits CSV into rows the way the gateway's RFC 4180 parser reads them (src/csv.ts): a quote opens a
 * quoted cell only at the start of a cell, `""` inside one is a quote, CR, LF and CRLF end a row outside
 * quotes and are kept inside them. Rows whose cells are all empty are skipped, as the gateway skips them,
 * so a batch's indexes map onto the rows sent. The first row with content is the header. Lines are
 * counted as physical lines (CRLF, LF or a lone CR each end one), and each row carries the line it
 * starts on, whatever quoted line breaks it holds.
 */
export function csvSplitter(sink: SplitSink, limit: number): Splitter {
  let line = 1;
  let rowLine = 1;
  let quoted = false;
  /** A quote inside a quoted cell: it closes the cell unless the next byte is a quote too. */
  let quoteSeen = false;
  let cellEmpty = true;
  let content = false;
  let prevCr = false;
  let headerSeen = false;
  let first = true;
  const pending = new Pending(limit);

  const emit = (bytes: Uint8Array, start: number, end: number, at: number) => {
    if (!headerSeen) {
      headerSeen = true;
      sink.header(bytes.subarray(start, end));
    } else sink.record(bytes, start, end, at);
  };

  /** The row in progress ends before `chunk[end]` (or at the end of the file). */
  const endRow = (chunk: Uint8Array, start: number, end: number) => {
    if (content) {
      const size = pending.size + end - start;
      if (size > limit) sink.refuse(rowLine, tooLarge(size, limit));
      else {
        const joined = pending.join(chunk, start, end);
        if (joined) emit(joined, 0, joined.length, rowLine);
        else emit(chunk, start, end, rowLine);
      }
    }
    pending.reset();
    content = false;
    cellEmpty = true;
  };

  return {
    push(chunk) {
      const buffer = Buffer.from(chunk.buffer, chunk.byteOffset, chunk.length);
      const n = chunk.length;
      let i = first ? bomLength(chunk) : 0;
      first = false;
      let start = i;
      let nextQuote = -1;
      let nextCr = -1;
      while (i < n) {
        // Fast path: at the start of a row, a row without quotes or CR up to the next LF.
        if (i === start && !quoted && !quoteSeen && pending.size === 0) {
          if (nextQuote < i) nextQuote = buffer.indexOf(QUOTE, i) >>> 0;
          if (nextCr < i) nextCr = buffer.indexOf(CR, i) >>> 0;
          const lf = buffer.indexOf(LF, i);
          if (lf >= 0 && lf < nextQuote && lf < nextCr) {
            if (lf > i) {
              if (plainRowHasContent(chunk, i, lf)) {
                if (lf - i > limit) sink.refuse(rowLine, tooLarge(lf - i, limit));
                else emit(chunk, i, lf, rowLine);
              }
              line++;
            } else if (!prevCr) line++;
            prevCr = false;
            i = lf + 1;
            start = i;
            rowLine = line;
            continue;
          }
        }
        const c = chunk[i] as number;
        let rowEnded = false;
        if (quoteSeen) {
          quoteSeen = false;
          if (c === QUOTE) {
            // A doubled quote: one quote in the cell, which stays quoted.
            cellEmpty = false;
            content = true;
            prevCr = false;
            i++;
            continue;
          }
          quoted = false;
        }
        if (quoted) {
          // A quote either closes the cell or is the first of a doubled one; the next byte tells.
          if (c === QUOTE) quoteSeen = true;
          else {
            cellEmpty = false;
            content = true;
          }
        } else if (c === QUOTE) {
          if (cellEmpty) quoted = true;
          else content = true;
        } else if (c === COMMA) cellEmpty = true;
        else if (c === LF || c === CR) {
          endRow(chunk, start, i);
          start = i + 1;
          rowEnded = true;
        } else {
          cellEmpty = false;
          content = true;
        }
        if (c === LF) {
          if (!prevCr) line++;
        } else if (c === CR) line++;
        prevCr = c === CR;
        if (rowEnded) rowLine = line;
        i++;
      }
      pending.add(chunk, start, n);
    },

    end() {
      if (quoteSeen) quoted = false;
      quoteSeen = false;
      if (quoted) {
        sink.refuse(rowLine, "the file ends inside a quoted cell of this row (a quote is not closed)");
        pending.reset();
      } else endRow(empty, 0, 0);
      quoted = false;
    },
  };
}
