//! Statement text without the values written into it.
//!
//! [`sanitize_query`] keeps a statement's shape (keywords, identifiers, operators and bind
//! placeholders) and replaces every literal with `?`:
//!
//! | in the text | becomes |
//! |---|---|
//! | `'text'`, `'it''s'`, `E'a\'b'`, `N'x'`, `_utf8mb4'x'`, `U&'x'` | `?` |
//! | `$$body$$`, `$tag$body$tag$` (PostgreSQL, and the generic dialect) | `?` |
//! | `"text"` (MySQL, where double quotes make strings) | `?` |
//! | `42`, `-1.5e3` (the sign is kept), `.5`, `0x1F`, `0b101`, `X'0A'`, `B'01'` | `?` |
//! | `-- comment`, `/* comment */` (nested on PostgreSQL), `# comment` (MySQL) | removed |
//! | runs of white space | one space |
//! | `$1`, `?`, `?3`, `:name`, `@name`, `$name` (SQLite) | kept |
//! | `"Ident"` (PostgreSQL, SQLite), `` `ident` `` | kept |
//!
//! A literal that never ends (an unterminated string or comment) swallows the rest of the
//! text: what follows a quote the scanner cannot close is never copied. When in doubt the
//! scanner redacts more, never less: a backslash escapes the next character inside strings
//! on MySQL and in the generic dialect (as MySQL does by default), and only in `E'…'`
//! strings on PostgreSQL and SQLite (as they do).
//!
//! The result is at most `max_bytes` long, cut on a character boundary and ended with `…`
//! when cut. The work stops as soon as the output is full, so a statement of a megabyte
//! costs what its first literals cost. Any input is accepted: the function never panics.

/// The SQL dialect a statement is written in: it decides what double quotes, backslashes,
/// `$` and `#` mean.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Dialect {
    /// PostgreSQL: `"…"` is an identifier, `$n` a placeholder, `$tag$…$tag$` a string,
    /// `/* */` comments nest, backslashes are plain characters except in `E'…'`.
    Postgres,
    /// MySQL and MariaDB: `"…"` is a string, `` `…` `` an identifier, backslashes escape,
    /// `#` starts a comment.
    MySql,
    /// SQLite: `"…"` and `` `…` `` are identifiers, `$name` a placeholder, backslashes are
    /// plain characters.
    Sqlite,
    /// Unknown: the most cautious reading (backslashes escape, `$tag$` quotes, `"…"` is an
    /// identifier).
    #[default]
    Generic,
}

/// The default cap on a sanitized statement: 2 KiB.
pub const DEFAULT_MAX_QUERY_BYTES: usize = 2048;

/// What ends a statement cut at the cap.
const ELLIPSIS: &str = "…";

/// The statement text `sql` with every literal replaced by `?`, comments removed, white
/// space collapsed, at most `max_bytes` long. See the [module docs](self) for the rules.
///
/// ```
/// use xray_sql::sanitize::{sanitize_query, Dialect};
/// let q = sanitize_query(
///     "SELECT * FROM users WHERE name = 'ann' AND age > 30 AND id = $1 -- find her",
///     Dialect::Postgres,
///     2048,
/// );
/// assert_eq!(q, "SELECT * FROM users WHERE name = ? AND age > ? AND id = $1");
/// ```
pub fn sanitize_query(sql: &str, dialect: Dialect, max_bytes: usize) -> String {
    let mut w = Writer {
        out: String::with_capacity(sql.len().min(max_bytes) + 4),
        max: max_bytes,
        pending_space: false,
    };
    let complete = scan(sql, dialect, &mut w);
    let mut out = w.out;
    if !complete || out.len() > max_bytes {
        truncate(&mut out, max_bytes);
    }
    out
}

struct Writer {
    out: String,
    max: usize,
    pending_space: bool,
}

impl Writer {
    /// True once more output would be cut anyway.
    fn full(&self) -> bool {
        self.out.len() > self.max
    }

    fn push(&mut self, s: &str) {
        if self.pending_space {
            if !self.out.is_empty() {
                self.out.push(' ');
            }
            self.pending_space = false;
        }
        // Never more than a few bytes past the cap, however long `s` is.
        let room = self
            .max
            .saturating_add(ELLIPSIS.len() + 1)
            .saturating_sub(self.out.len());
        if s.len() <= room {
            self.out.push_str(s);
        } else {
            let mut cut = room;
            while cut > 0 && !s.is_char_boundary(cut) {
                cut -= 1;
            }
            self.out.push_str(&s[..cut]);
            // Mark the output as cut even when the piece ended on a boundary right at it.
            while !self.full() {
                self.out.push(' ');
            }
        }
    }

    fn space(&mut self) {
        self.pending_space = true;
    }
}

/// Cuts `out` to at most `max` bytes on a character boundary, ending it with `…` when there
/// is room for it.
fn truncate(out: &mut String, max: usize) {
    let keep = if max >= ELLIPSIS.len() {
        max - ELLIPSIS.len()
    } else {
        max
    };
    let mut cut = keep.min(out.len());
    while cut > 0 && !out.is_char_boundary(cut) {
        cut -= 1;
    }
    out.truncate(cut);
    if max >= ELLIPSIS.len() {
        out.push_str(ELLIPSIS);
    }
}

fn is_ident_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'$' || b >= 0x80
}

/// Writes the sanitized form of `sql`; false when it stopped early because the output was
/// full.
fn scan(sql: &str, dialect: Dialect, w: &mut Writer) -> bool {
    let b = sql.as_bytes();
    let n = b.len();
    let backslash_escapes = matches!(dialect, Dialect::MySql | Dialect::Generic);
    let mut i = 0;
    while i < n {
        if w.full() {
            return false;
        }
        let c = b[i];
        let next = b.get(i + 1).copied();
        match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => {
                w.space();
                i += 1;
            }
            b'-' if next == Some(b'-') => {
                i = skip_line(b, i);
                w.space();
            }
            b'#' if dialect == Dialect::MySql => {
                i = skip_line(b, i);
                w.space();
            }
            b'/' if next == Some(b'*') => {
                i = skip_block_comment(b, i, dialect == Dialect::Postgres);
                w.space();
            }
            b'\'' => {
                i = skip_quoted(b, i, b'\'', backslash_escapes);
                w.push("?");
            }
            b'"' if dialect == Dialect::MySql => {
                i = skip_quoted(b, i, b'"', true);
                w.push("?");
            }
            b'"' | b'`' => {
                // A quoted identifier: kept, unless it never ends (then the rest may be
                // anything, and is dropped).
                let (end, closed) = quoted(b, i, c, false);
                if closed {
                    w.push(sql.get(i..end).unwrap_or("?"));
                } else {
                    w.push("?");
                }
                i = end;
            }
            b'$' => i = dollar(sql, i, dialect, backslash_escapes, w),
            b'?' => {
                // `?` and SQLite's numbered `?NNN`.
                let end = i + 1 + count_while(&b[i + 1..], |d| d.is_ascii_digit());
                w.push(sql.get(i..end).unwrap_or("?"));
                i = end;
            }
            b':' if next == Some(b':') => {
                w.push("::");
                i += 2;
            }
            b':' | b'@' if next.is_some_and(is_ident_start) || next == Some(c) => {
                // `:name`, `@name`, `@@variable`.
                let mut end = i + 1;
                while b.get(end) == Some(&c) {
                    end += 1;
                }
                end += count_while(&b[end..], is_ident_byte);
                w.push(sql.get(i..end).unwrap_or("?"));
                i = end;
            }
            b'0'..=b'9' => {
                i = skip_number(b, i);
                w.push("?");
            }
            b'.' if next.is_some_and(|d| d.is_ascii_digit()) => {
                i = skip_number(b, i);
                w.push("?");
            }
            _ if is_ident_start(c) => i = ident(sql, i, dialect, backslash_escapes, w),
            _ => {
                // Punctuation and operators, one ASCII byte (every byte >= 0x80 starts or
                // continues an identifier above).
                w.push(sql.get(i..i + 1).unwrap_or(""));
                i += 1;
            }
        }
    }
    true
}

fn count_while(b: &[u8], f: impl Fn(u8) -> bool) -> usize {
    b.iter().take_while(|&&x| f(x)).count()
}

/// From `--` or `#` to the end of the line.
fn skip_line(b: &[u8], i: usize) -> usize {
    match b[i..].iter().position(|&x| x == b'\n') {
        Some(p) => i + p + 1,
        None => b.len(),
    }
}

/// From `/*` past its `*/`; nested comments count when `nested`. Unterminated: the rest.
fn skip_block_comment(b: &[u8], i: usize, nested: bool) -> usize {
    let mut depth = 0usize;
    let mut j = i;
    while j + 1 < b.len() {
        if b[j] == b'/' && b[j + 1] == b'*' {
            if depth == 0 || nested {
                depth += 1;
            }
            j += 2;
        } else if b[j] == b'*' && b[j + 1] == b'/' {
            depth -= 1;
            j += 2;
            if depth == 0 {
                return j;
            }
        } else {
            j += 1;
        }
    }
    b.len()
}

/// From the opening `quote` at `i` past the closing one (a doubled quote is part of the
/// text; with `backslash`, a backslash escapes the next byte). Unterminated: the rest.
fn skip_quoted(b: &[u8], i: usize, quote: u8, backslash: bool) -> usize {
    quoted(b, i, quote, backslash).0
}

/// [`skip_quoted`], and whether the closing quote was found.
fn quoted(b: &[u8], i: usize, quote: u8, backslash: bool) -> (usize, bool) {
    let mut j = i + 1;
    while j < b.len() {
        let x = b[j];
        if backslash && x == b'\\' {
            j += 2;
        } else if x == quote {
            if b.get(j + 1) == Some(&quote) {
                j += 2;
            } else {
                return (j + 1, true);
            }
        } else {
            j += 1;
        }
    }
    (b.len(), false)
}

/// A number starting at `i` (a digit, or a `.` before one), with whatever letters and
/// digits stick to it (`0x1F`, `1e-5`, `1_000`, `12abc`): all of it is the literal.
fn skip_number(b: &[u8], i: usize) -> usize {
    let mut j = i;
    loop {
        match b.get(j) {
            Some(x) if x.is_ascii_alphanumeric() || *x == b'_' || *x == b'.' => {
                // An exponent's sign belongs to the number.
                if (*x == b'e' || *x == b'E')
                    && matches!(b.get(j + 1), Some(b'+' | b'-'))
                    && b.get(j + 2).is_some_and(|d| d.is_ascii_digit())
                    && !starts_hex(b, i)
                {
                    j += 2;
                } else {
                    j += 1;
                }
            }
            _ => return j,
        }
    }
}

fn starts_hex(b: &[u8], i: usize) -> bool {
    b.get(i) == Some(&b'0') && matches!(b.get(i + 1), Some(b'x' | b'X'))
}

/// `$` at `i`: a numbered placeholder (`$1`), a SQLite named parameter (`$name`), a
/// dollar-quoted string (`$$…$$`, `$tag$…$tag$`), or a lone `$`.
fn dollar(sql: &str, i: usize, dialect: Dialect, backslash: bool, w: &mut Writer) -> usize {
    let _ = backslash;
    let b = sql.as_bytes();
    let rest = &b[i + 1..];
    if rest.first().is_some_and(|d| d.is_ascii_digit()) {
        let end = i + 1 + count_while(rest, |d| d.is_ascii_digit());
        w.push(sql.get(i..end).unwrap_or("?"));
        return end;
    }
    if matches!(dialect, Dialect::Postgres | Dialect::Generic) {
        // `$tag$`: a tag is an identifier without `$`, possibly empty.
        let tag_len = if rest.first().is_some_and(|&d| is_ident_start(d)) {
            count_while(rest, |d| d != b'$' && is_ident_byte(d))
        } else {
            0
        };
        if b.get(i + 1 + tag_len) == Some(&b'$') {
            let open_end = i + 2 + tag_len;
            let tag = sql.get(i..open_end).unwrap_or("$$");
            let end = match sql.get(open_end..).and_then(|s| s.find(tag)) {
                Some(p) => open_end + p + tag.len(),
                None => b.len(),
            };
            w.push("?");
            return end;
        }
    }
    if dialect == Dialect::Sqlite && rest.first().is_some_and(|&d| is_ident_start(d)) {
        let end = i + 1 + count_while(rest, is_ident_byte);
        w.push(sql.get(i..end).unwrap_or("?"));
        return end;
    }
    w.push("$");
    i + 1
}

/// An identifier or keyword at `i`, or the prefix of a string literal (`E'…'`, `N'…'`,
/// `X'…'`, `B'…'`, `U&'…'`, `_charset'…'`), which is redacted with its prefix.
fn ident(sql: &str, i: usize, dialect: Dialect, backslash: bool, w: &mut Writer) -> usize {
    let b = sql.as_bytes();
    let end = i + count_while(&b[i..], is_ident_byte);
    let word = &b[i..end];
    let quote_at = match (b.get(end), b.get(end + 1)) {
        (Some(b'\''), _) => Some(end),
        (Some(b'&'), Some(b'\'')) if word.eq_ignore_ascii_case(b"u") => Some(end + 1),
        _ => None,
    };
    if let Some(q) = quote_at {
        let prefix = word.len() == 1
            && matches!(
                word[0].to_ascii_lowercase(),
                b'e' | b'n' | b'x' | b'b' | b'u'
            );
        if prefix || word.first() == Some(&b'_') {
            let escapes = backslash
                || word.eq_ignore_ascii_case(b"e")
                || (dialect == Dialect::MySql && word.first() == Some(&b'_'));
            w.push("?");
            return skip_quoted(b, q, b'\'', escapes);
        }
    }
    w.push(sql.get(i..end).unwrap_or(""));
    end
}

/// What `preparation` to record for a statement: `call` for a stored procedure call
/// (`CALL …`, `EXEC …`, `EXECUTE …`, `{call …}`), else `statement`.
pub fn preparation(sql: &str) -> &'static str {
    let t = sql.trim_start().trim_start_matches('{').trim_start();
    let word: &str = t
        .split(|c: char| !c.is_ascii_alphabetic())
        .next()
        .unwrap_or("");
    if word.eq_ignore_ascii_case("call")
        || word.eq_ignore_ascii_case("exec")
        || word.eq_ignore_ascii_case("execute")
    {
        "call"
    } else {
        "statement"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(s: &str) -> String {
        sanitize_query(s, Dialect::Postgres, DEFAULT_MAX_QUERY_BYTES)
    }
    fn my(s: &str) -> String {
        sanitize_query(s, Dialect::MySql, DEFAULT_MAX_QUERY_BYTES)
    }
    fn lite(s: &str) -> String {
        sanitize_query(s, Dialect::Sqlite, DEFAULT_MAX_QUERY_BYTES)
    }
    fn generic(s: &str) -> String {
        sanitize_query(s, Dialect::Generic, DEFAULT_MAX_QUERY_BYTES)
    }

    #[test]
    fn single_quoted_strings_become_a_placeholder() {
        assert_eq!(pg("SELECT 'secret'"), "SELECT ?");
    }

    #[test]
    fn doubled_quotes_stay_inside_the_string() {
        assert_eq!(pg("SELECT 'it''s secret', x"), "SELECT ?, x");
    }

    #[test]
    fn backslash_escapes_on_mysql() {
        assert_eq!(my(r"SELECT 'a\' OR 1 = 1 --', b"), "SELECT ?, b");
    }

    #[test]
    fn backslash_is_plain_in_postgres_standard_strings() {
        assert_eq!(pg(r"SELECT 'C:\', 5"), "SELECT ?, ?");
    }

    #[test]
    fn e_strings_take_backslash_escapes_on_postgres() {
        assert_eq!(pg(r"SELECT E'it\'s secret', col"), "SELECT ?, col");
    }

    #[test]
    fn prefixed_strings_lose_their_prefix() {
        assert_eq!(
            pg("SELECT N'x', X'0AFF', B'0101', U&'d\\0061t'"),
            "SELECT ?, ?, ?, ?"
        );
        assert_eq!(my("SELECT _utf8mb4'secret'"), "SELECT ?");
    }

    #[test]
    fn dollar_quoted_strings_become_a_placeholder() {
        assert_eq!(
            pg("SELECT $$secret 'x'$$, $body$ 1 $ 2 $body$ FROM t"),
            "SELECT ?, ? FROM t"
        );
    }

    #[test]
    fn numbered_placeholders_are_kept() {
        assert_eq!(
            pg("SELECT * FROM t WHERE a = $1 AND b = $12"),
            "SELECT * FROM t WHERE a = $1 AND b = $12"
        );
    }

    #[test]
    fn question_mark_placeholders_are_kept() {
        assert_eq!(
            my("INSERT INTO t VALUES (?, ?)"),
            "INSERT INTO t VALUES (?, ?)"
        );
        assert_eq!(lite("SELECT ?1, ?2"), "SELECT ?1, ?2");
    }

    #[test]
    fn named_placeholders_are_kept() {
        assert_eq!(
            generic("WHERE a = :name AND b = @p1"),
            "WHERE a = :name AND b = @p1"
        );
        assert_eq!(lite("WHERE a = $name"), "WHERE a = $name");
    }

    #[test]
    fn casts_are_kept() {
        assert_eq!(pg("SELECT $1::int8, '5'::text"), "SELECT $1::int8, ?::text");
    }

    #[test]
    fn integers_and_decimals_become_a_placeholder() {
        assert_eq!(
            pg("SELECT 42, 3.14, .5, 1e10, 2.5E-3"),
            "SELECT ?, ?, ?, ?, ?"
        );
    }

    #[test]
    fn signs_stay_outside_the_placeholder() {
        assert_eq!(pg("WHERE a = -7"), "WHERE a = -?");
    }

    #[test]
    fn hex_and_binary_numbers_become_a_placeholder() {
        assert_eq!(my("SELECT 0xDEADBEEF, 0b1010, 1_000"), "SELECT ?, ?, ?");
    }

    #[test]
    fn digits_inside_identifiers_are_kept() {
        assert_eq!(pg("SELECT t1.col2 FROM tab3"), "SELECT t1.col2 FROM tab3");
    }

    #[test]
    fn line_comments_are_removed() {
        assert_eq!(pg("SELECT a -- password 123\nFROM t"), "SELECT a FROM t");
    }

    #[test]
    fn block_comments_are_removed() {
        assert_eq!(pg("SELECT /* 'x' 12 */ a"), "SELECT a");
    }

    #[test]
    fn postgres_block_comments_nest() {
        assert_eq!(pg("SELECT /* a /* b */ 42 */ c"), "SELECT c");
        // Elsewhere the first `*/` ends the comment.
        assert_eq!(my("SELECT /* a /* b */ 42 */ c"), "SELECT ? */ c");
    }

    #[test]
    fn hash_comments_on_mysql_only() {
        assert_eq!(my("SELECT a # note 1\nFROM t"), "SELECT a FROM t");
        assert_eq!(pg("SELECT a # b"), "SELECT a # b");
    }

    #[test]
    fn mysql_double_quotes_are_strings() {
        assert_eq!(my("SELECT \"secret\" FROM `t`"), "SELECT ? FROM `t`");
    }

    #[test]
    fn postgres_double_quotes_are_identifiers() {
        assert_eq!(
            pg("SELECT \"userId\" FROM \"Users\""),
            "SELECT \"userId\" FROM \"Users\""
        );
    }

    #[test]
    fn unterminated_string_swallows_the_rest() {
        assert_eq!(pg("SELECT 'abc, password = 'x"), "SELECT ?x");
        assert_eq!(pg("SELECT 'never closed 123"), "SELECT ?");
    }

    #[test]
    fn unterminated_quoted_identifier_is_dropped() {
        assert_eq!(pg("SELECT \"abc 123"), "SELECT ?");
    }

    #[test]
    fn unterminated_comment_and_dollar_quote_swallow_the_rest() {
        assert_eq!(pg("SELECT 1 /* 2 3"), "SELECT ?");
        assert_eq!(pg("SELECT $x$ 42"), "SELECT ?");
    }

    #[test]
    fn white_space_collapses() {
        assert_eq!(pg("  SELECT\n\ta,\r\n  b  "), "SELECT a, b");
    }

    #[test]
    fn long_output_is_capped_on_a_char_boundary() {
        let sql = format!("SELECT {}", "é".repeat(5000));
        let out = sanitize_query(&sql, Dialect::Postgres, 100);
        assert!(out.len() <= 100, "{}", out.len());
        assert!(out.ends_with('…'));
        assert!(out.starts_with("SELECT éé"));
    }

    #[test]
    fn an_unbounded_cap_works() {
        assert_eq!(
            sanitize_query("SELECT 'x'", Dialect::Postgres, usize::MAX),
            "SELECT ?"
        );
    }

    #[test]
    fn tiny_caps_work() {
        assert_eq!(sanitize_query("SELECT 1", Dialect::Postgres, 0), "");
        assert_eq!(sanitize_query("SELECT 1", Dialect::Postgres, 2), "SE");
        assert_eq!(sanitize_query("SELECT 1", Dialect::Postgres, 8), "SELECT ?");
        assert_eq!(sanitize_query("SELECT 10", Dialect::Postgres, 7), "SELE…");
    }

    #[test]
    fn a_megabyte_statement_is_cut_fast_and_literal_free() {
        let mut sql = String::from("INSERT INTO t VALUES ");
        while sql.len() < 1 << 20 {
            sql.push_str("('pa55word', 123456), ");
        }
        let out = sanitize_query(&sql, Dialect::MySql, DEFAULT_MAX_QUERY_BYTES);
        assert!(out.len() <= DEFAULT_MAX_QUERY_BYTES);
        assert!(!out.contains("pa55") && !out.contains('1'), "{out}");
        // A single megabyte-long literal is scanned once and leaves one placeholder.
        let big = format!("SELECT '{}'", "x".repeat(1 << 20));
        assert_eq!(pg(&big), "SELECT ?");
    }

    #[test]
    fn non_ascii_identifiers_are_kept() {
        assert_eq!(
            pg("SELECT prénom FROM 表 WHERE x = 'ü'"),
            "SELECT prénom FROM 表 WHERE x = ?"
        );
    }

    #[test]
    fn preparation_names_calls() {
        assert_eq!(preparation("CALL proc(1)"), "call");
        assert_eq!(preparation("  exec p"), "call");
        assert_eq!(preparation("{call p(?)}"), "call");
        assert_eq!(preparation("SELECT 1"), "statement");
        assert_eq!(preparation(""), "statement");
    }

    /// Random statements built from identifiers (letters only), placeholders without digits
    /// and literals that all hold digits or quotes: whatever the mix, nothing panics, the
    /// cap holds, and no digit or quote survives.
    #[test]
    fn generated_statements_lose_every_literal() {
        let mut rng = fastrand::Rng::with_seed(0x5eed);
        let idents = [
            "select", "from", "where", "users", "name", "and", "or", "in", "x_y", "prénom",
        ];
        let puncts = [
            ",", "(", ")", "=", "<", ">", "+", "-", "*", ";", ".", "::", " ",
        ];
        for round in 0..20_000 {
            let dialect = [
                Dialect::Postgres,
                Dialect::MySql,
                Dialect::Sqlite,
                Dialect::Generic,
            ][round % 4];
            let mut sql = String::new();
            for _ in 0..rng.usize(1..30) {
                match rng.u8(0..12) {
                    0 | 1 => sql.push_str(idents[rng.usize(..idents.len())]),
                    2 => sql.push_str(puncts[rng.usize(..puncts.len())]),
                    3 => sql.push_str(&format!("'{}''{}'", rng.u32(..), rng.u16(..))),
                    4 => sql.push_str(&format!("{}.{}", rng.u32(..), rng.u8(..))),
                    5 => sql.push_str(&format!("0x{:X}", rng.u64(..))),
                    6 => sql.push_str(&format!("E'\\'{}'", rng.u16(..))),
                    7 if dialect != Dialect::MySql && dialect != Dialect::Sqlite => {
                        sql.push_str(&format!("$q${}'\"$q$", rng.u32(..)))
                    }
                    8 => sql.push_str(&format!("/* {} ' */", rng.u32(..))),
                    9 => sql.push_str(&format!("-- {} '\n", rng.u32(..))),
                    10 => sql.push_str(if dialect == Dialect::Postgres {
                        "?"
                    } else {
                        ":name"
                    }),
                    _ => sql.push(' '),
                }
                sql.push(if rng.bool() { ' ' } else { '\n' });
            }
            let cap = rng.usize(0..300);
            let out = sanitize_query(&sql, dialect, cap);
            assert!(out.len() <= cap, "{sql:?} -> {out:?}");
            assert!(
                !out.contains(|c: char| c.is_ascii_digit() || c == '\'' || c == '"'),
                "{dialect:?}: {sql:?} -> {out:?}"
            );
        }
    }

    /// Arbitrary bytes (as lossy UTF-8) and arbitrary caps never panic and keep the cap.
    #[test]
    fn arbitrary_input_never_panics() {
        let mut rng = fastrand::Rng::with_seed(7);
        let alphabet = b"'\"`$?:@#-/*\\ \n0123456789abcxEN_&.;";
        for round in 0..50_000 {
            let len = rng.usize(0..64);
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.u8(..) < 200 {
                        alphabet[rng.usize(..alphabet.len())]
                    } else {
                        rng.u8(..)
                    }
                })
                .collect();
            let sql = String::from_utf8_lossy(&bytes);
            let dialect = [
                Dialect::Postgres,
                Dialect::MySql,
                Dialect::Sqlite,
                Dialect::Generic,
            ][round % 4];
            let cap = rng.usize(0..80);
            let out = sanitize_query(&sql, dialect, cap);
            assert!(out.len() <= cap);
        }
    }
}
