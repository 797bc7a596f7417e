/*
 * The podnet-cni shim's text handling, included once by podnet-cni.c (one
 * translation unit, one cc command): growable buffers, JSON string output,
 * a UTF-8 check, and a small JSON tokenizer that walks a whole document
 * (nesting bounded by MAX_DEPTH) to read the keys of its top-level object.
 */
#ifndef PODNET_CNI_JSON_H
#define PODNET_CNI_JSON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 256

struct buf {
	char *data;
	size_t len, cap;
};

static void put(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		while (b->len + n + 1 > cap)
			cap *= 2;
		char *data = realloc(b->data, cap);
		if (!data) {
			fputs("podnet-cni: out of memory\n", stderr);
			exit(1);
		}
		b->data = data;
		b->cap = cap;
	}
	if (n)
		memcpy(b->data + b->len, s, n);
	b->len += n;
	b->data[b->len] = '\0';
}

static void puts_(struct buf *b, const char *s) { put(b, s, strlen(s)); }

static void put_json_string(struct buf *b, const char *s, size_t n)
{
	char esc[8];
	puts_(b, "\"");
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			esc[0] = '\\';
			esc[1] = (char)c;
			put(b, esc, 2);
		} else if (c < 0x20 || c == 0x7f) {
			snprintf(esc, sizeof esc, "\\u%04x", c);
			puts_(b, esc);
		} else {
			put(b, (const char *)&s[i], 1);
		}
	}
	puts_(b, "\"");
}

/* Well-formed UTF-8 (no overlong forms, no surrogates, nothing above U+10FFFF)? */
static int valid_utf8(const unsigned char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		unsigned char c = s[i];
		size_t more;
		unsigned int cp;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			more = 1, cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			more = 2, cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			more = 3, cp = c & 0x07;
		} else {
			return 0;
		}
		if (n - i <= more)
			return 0;
		for (size_t k = 1; k <= more; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return 0;
			cp = (cp << 6) | (s[i + k] & 0x3f);
		}
		if ((more == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
		    (more == 3 && (cp < 0x10000 || cp > 0x10ffff)))
			return 0;
		i += more + 1;
	}
	return 1;
}

/* -- a JSON tokenizer, enough to read the top-level object's keys ------------------------- */

struct json {
	const char *p, *end;
};

static void ws(struct json *j)
{
	while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
		j->p++;
}

static int hex4(const char *p, unsigned int *out)
{
	*out = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		unsigned int v;
		if (c >= '0' && c <= '9')
			v = (unsigned int)(c - '0');
		else if (c >= 'a' && c <= 'f')
			v = (unsigned int)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			v = (unsigned int)(c - 'A' + 10);
		else
			return -1;
		*out = (*out << 4) | v;
	}
	return 0;
}

static void put_utf8(struct buf *out, unsigned int cp)
{
	char u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (char)cp, n = 1;
	} else if (cp < 0x800) {
		u[0] = (char)(0xc0 | (cp >> 6)), u[1] = (char)(0x80 | (cp & 0x3f)), n = 2;
	} else if (cp < 0x10000) {
		u[0] = (char)(0xe0 | (cp >> 12)), u[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (char)(0x80 | (cp & 0x3f)), n = 3;
	} else {
		u[0] = (char)(0xf0 | (cp >> 18)), u[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (char)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (char)(0x80 | (cp & 0x3f)), n = 4;
	}
	put(out, u, n);
}

/* A string at j->p, decoded into `out` (when not NULL; NUL bytes included, counted in out->len). */
static int string(struct json *j, struct buf *out)
{
	if (j->p >= j->end || *j->p != '"')
		return -1;
	j->p++;
	if (out)
		put(out, "", 0); /* allocated, and NUL-terminated, even when empty */
	while (j->p < j->end) {
		unsigned char c = (unsigned char)*j->p;
		if (c == '"') {
			j->p++;
			return 0;
		}
		if (c < 0x20)
			return -1;
		if (c != '\\') {
			if (out)
				put(out, j->p, 1);
			j->p++;
			continue;
		}
		if (j->end - j->p < 2)
			return -1;
		char e = j->p[1];
		j->p += 2;
		static const char escapes[] = "\"\\/bfnrt", decoded[] = "\"\\/\b\f\n\r\t";
		const char *simple = e ? strchr(escapes, e) : NULL;
		if (simple) {
			if (out)
				put(out, &decoded[simple - escapes], 1);
			continue;
		}
		if (e != 'u' || j->end - j->p < 4)
			return -1;
		unsigned int cp, low;
		if (hex4(j->p, &cp) < 0)
			return -1;
		j->p += 4;
		if (cp >= 0xd800 && cp <= 0xdbff) { /* a pair, or the text is not Unicode */
			if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u' || hex4(j->p + 2, &low) < 0 ||
			    low < 0xdc00 || low > 0xdfff)
				return -1;
			j->p += 6;
			cp = 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00);
		} else if (cp >= 0xdc00 && cp <= 0xdfff) {
			return -1;
		}
		if (out)
			put_utf8(out, cp);
	}
	return -1;
}

static int number(struct json *j, double *out)
{
	const char *start = j->p, *p = j->p;
	if (p < j->end && *p == '-')
		p++;
	if (p >= j->end)
		return -1;
	if (*p == '0') {
		p++;
	} else if (*p >= '1' && *p <= '9') {
		while (p < j->end && *p >= '0' && *p <= '9')
			p++;
	} else {
		return -1;
	}
	if (p < j->end && *p == '.') {
		p++;
		if (p >= j->end || *p < '0' || *p > '9')
			return -1;
		while (p < j->end && *p >= '0' && *p <= '9')
			p++;
	}
	if (p < j->end && (*p == 'e' || *p == 'E')) {
		p++;
		if (p < j->end && (*p == '+' || *p == '-'))
			p++;
		if (p >= j->end || *p < '0' || *p > '9')
			return -1;
		while (p < j->end && *p >= '0' && *p <= '9')
			p++;
	}
	char text[64];
	size_t n = (size_t)(p - start);
	if (out) {
		if (n >= sizeof text)
			*out = NAN; /* absurdly long: unusable, but still JSON */
		else {
			memcpy(text, start, n);
			text[n] = '\0';
			*out = strtod(text, NULL);
		}
	}
	j->p = p;
	return 0;
}

static int literal(struct json *j, const char *word)
{
	size_t n = strlen(word);
	if ((size_t)(j->end - j->p) < n || memcmp(j->p, word, n) != 0)
		return -1;
	j->p += n;
	return 0;
}

static int value(struct json *j, int depth)
{
	ws(j);
	if (j->p >= j->end || depth > MAX_DEPTH)
		return -1;
	char c = *j->p;
	if (c == '"')
		return string(j, NULL);
	if (c == '{' || c == '[') {
		char close = c == '{' ? '}' : ']';
		j->p++;
		ws(j);
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return 0;
		}
		for (;;) {
			if (c == '{') {
				ws(j);
				if (string(j, NULL) < 0)
					return -1;
				ws(j);
				if (j->p >= j->end || *j->p++ != ':')
					return -1;
			}
			if (value(j, depth + 1) < 0)
				return -1;
			ws(j);
			if (j->p >= j->end)
				return -1;
			if (*j->p == ',') {
				j->p++;
				continue;
			}
			if (*j->p++ != close)
				return -1;
			return 0;
		}
	}
	if (c == 't')
		return literal(j, "true");
	if (c == 'f')
		return literal(j, "false");
	if (c == 'n')
		return literal(j, "null");
	return number(j, NULL);
}

enum { ABSENT, STRING, NUMBER, OTHER };

struct settings {
	int socket_kind, timeout_kind, version_kind;
	double timeout;
	struct buf *socket, *version; /* where the strings go */
};

/* Read the top-level keys; 0 if `text` is one JSON object. The last of a repeated key wins. */
static int read_settings(const char *text, size_t n, struct settings *s)
{
	struct json j = {text, text + n};
	struct buf key = {0};
	ws(&j);
	if (j.p >= j.end || *j.p != '{')
		return -1;
	j.p++;
	ws(&j);
	if (j.p < j.end && *j.p == '}') {
		j.p++;
	} else {
		for (;;) {
			ws(&j);
			key.len = 0;
			if (string(&j, &key) < 0)
				goto bad;
			ws(&j);
			if (j.p >= j.end || *j.p++ != ':')
				goto bad;
			ws(&j);
			int is_socket = key.len == 11 && memcmp(key.data, "agentSocket", 11) == 0;
			int is_timeout = key.len == 12 && memcmp(key.data, "agentTimeout", 12) == 0;
			int is_version = key.len == 10 && memcmp(key.data, "cniVersion", 10) == 0;
			if ((is_socket || is_version) && j.p < j.end && *j.p == '"') {
				struct buf *out = is_socket ? s->socket : s->version;
				out->len = 0;
				if (string(&j, out) < 0)
					goto bad;
				*(is_socket ? &s->socket_kind : &s->version_kind) = STRING;
			} else if (is_timeout && j.p < j.end && (*j.p == '-' || (*j.p >= '0' && *j.p <= '9'))) {
				if (number(&j, &s->timeout) < 0)
					goto bad;
				s->timeout_kind = NUMBER;
			} else {
				if (value(&j, 1) < 0)
					goto bad;
				if (is_socket)
					s->socket_kind = OTHER;
				if (is_timeout)
					s->timeout_kind = OTHER;
				if (is_version)
					s->version_kind = OTHER;
			}
			ws(&j);
			if (j.p >= j.end)
				goto bad;
			if (*j.p == ',') {
				j.p++;
				continue;
			}
			if (*j.p++ != '}')
				goto bad;
			break;
		}
	}
	ws(&j);
	free(key.data);
	return j.p == j.end ? 0 : -1;
bad:
	free(key.data);
	return -1;
}

/* 1 if `text` is one JSON value (of any kind). */
static int is_json(const char *text, size_t n)
{
	struct json j = {text, text + n};
	ws(&j);
	if (value(&j, 1) < 0)
		return 0;
	ws(&j);
	return j.p == j.end;
}

#endif
