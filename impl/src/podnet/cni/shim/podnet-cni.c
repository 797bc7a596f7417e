/*
 * podnet-cni: the CNI plugin binary a runtime execs (installed as `podnet` in
 * the CNI bin dir). It does no networking itself: it answers VERSION, and
 * forwards every other call - the CNI_* environment and stdin untouched - to
 * the node's podnet agent (POST /v1/cni on its unix socket), which runs the
 * plugin logic (podnet.cni) and returns what to print and the exit status.
 * Written in C so an exec costs about a millisecond, not an interpreter start.
 *
 * From the network configuration it reads two top-level keys (a small JSON
 * tokenizer walks the document: a nested "agentSocket" is not the top-level
 * one, escapes are decoded):
 *   agentSocket   the agent's socket (default /var/run/podnet/podnet.sock);
 *                 present but not an absolute path of at most 107 bytes
 *                 without NUL: code 7.
 *   agentTimeout  seconds for the whole call - connecting (a full listen
 *                 queue is retried, not waited on), sending, every read -
 *                 default 30, more than 0 and at most 3600, else code 7.
 * Errors it meets itself are printed in the CNI error form: code 11 (the
 * agent is unreachable, or did not answer within agentTimeout), 4 (an
 * environment value that is not UTF-8), 6 (stdin that is not UTF-8), 7.
 */
#include <errno.h>
#include <math.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/var/run/podnet/podnet.sock"
#define DEFAULT_TIMEOUT_S 30.0
#define MAX_TIMEOUT_S 3600.0
#define CURRENT_VERSION "1.1.0"
#define SUPPORTED_VERSIONS "[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]"
#define EXIT_HEADER "Podnet-CNI-Exit:"
#define MAX_STDIN (4u << 20)  /* the agent takes 1 MiB; more is refused here */
#define MAX_REPLY (16u << 20) /* a result is a few hundred bytes */
#define MAX_DEPTH 256

static const char *const CNI_VARS[] = {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME",
				       "CNI_ARGS",    "CNI_PATH",        NULL};

struct buf {
	char *data;
	size_t len, cap;
};

/* Static, so that they are still reachable at exit (no leak to report) whatever path ends the run. */
static struct buf conf, body, request, reply, sock_path, version;

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
				struct buf *out = is_socket ? &sock_path : &version;
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

/* -- output -------------------------------------------------------------------------------- */

static const char *cni_version = CURRENT_VERSION;

static int fail(int code, const char *msg)
{
	struct buf out = {0};
	puts_(&out, "{\"cniVersion\":");
	put_json_string(&out, cni_version, strlen(cni_version));
	char num[32];
	snprintf(num, sizeof num, ",\"code\":%d,\"msg\":", code);
	puts_(&out, num);
	put_json_string(&out, msg, strlen(msg));
	puts_(&out, "}\n");
	fwrite(out.data, 1, out.len, stdout);
	free(out.data);
	return 1;
}

/* -- the exchange, all of it before the deadline -------------------------------------------- */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 1 when `fd` is ready, 0 at the deadline, -1 on error (errno). */
static int wait_fd(int fd, short events, double deadline)
{
	for (;;) {
		double left = deadline - now();
		if (left <= 0)
			return 0;
		struct pollfd p = {.fd = fd, .events = events};
		int r = poll(&p, 1, (int)(left * 1000) + 1);
		if (r > 0)
			return 1;
		if (r < 0 && errno != EINTR)
			return -1;
	}
}

static void pause_until(double deadline, double seconds)
{
	double left = deadline - now();
	if (left <= 0)
		return;
	if (seconds > left)
		seconds = left;
	struct timespec ts = {.tv_sec = (time_t)seconds, .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
	nanosleep(&ts, NULL);
}

int main(void)
{
	const char *command = getenv("CNI_COMMAND");
	if (command && strcmp(command, "VERSION") == 0) {
		printf("{\"cniVersion\":\"%s\",\"supportedVersions\":%s}\n", CURRENT_VERSION, SUPPORTED_VERSIONS);
		return 0;
	}
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
		if (conf.len + n > MAX_STDIN)
			return fail(7, "the network configuration on stdin is larger than 4 MiB");
		put(&conf, chunk, n);
	}
	puts_(&conf, "");

	char msg[640];
	struct settings s = {ABSENT, ABSENT, ABSENT, DEFAULT_TIMEOUT_S};
	int parsed = read_settings(conf.data, conf.len, &s) == 0;
	/* Not JSON: the agent says so (code 6); only what it needs to be reached is defaulted. */
	if (parsed && s.version_kind == STRING && version.len < 32 && !memchr(version.data, 0, version.len) &&
	    valid_utf8((const unsigned char *)version.data, version.len))
		cni_version = version.data;
	if (!valid_utf8((const unsigned char *)conf.data, conf.len))
		return fail(6, "the network configuration on stdin is not UTF-8");
	for (const char *const *var = CNI_VARS; *var; var++) {
		const char *v = getenv(*var);
		if (v && !valid_utf8((const unsigned char *)v, strlen(v))) {
			snprintf(msg, sizeof msg, "%s is not valid UTF-8", *var);
			return fail(4, msg);
		}
	}
	const char *path = DEFAULT_SOCKET;
	if (parsed && s.socket_kind == OTHER)
		return fail(7, "agentSocket must be a string: the absolute path of the agent's socket");
	if (parsed && s.socket_kind == STRING) {
		size_t limit = sizeof(((struct sockaddr_un *)0)->sun_path) - 1;
		if (memchr(sock_path.data, 0, sock_path.len))
			return fail(7, "agentSocket contains a NUL character");
		if (sock_path.len == 0 || sock_path.data[0] != '/') {
			snprintf(msg, sizeof msg, "agentSocket \"%.200s\" must be an absolute path", sock_path.data);
			return fail(7, msg);
		}
		if (sock_path.len > limit) {
			snprintf(msg, sizeof msg, "agentSocket \"%.200s%s\" is %zu bytes: a unix socket path has at most %zu",
				 sock_path.data, sock_path.len > 200 ? "..." : "", sock_path.len, limit);
			return fail(7, msg);
		}
		path = sock_path.data;
	}
	double timeout = DEFAULT_TIMEOUT_S;
	if (parsed && s.timeout_kind != ABSENT) {
		if (s.timeout_kind != NUMBER || !(s.timeout > 0 && s.timeout <= MAX_TIMEOUT_S))
			return fail(7, "agentTimeout must be a number of seconds, more than 0 and at most 3600");
		timeout = s.timeout;
	}
	double deadline = now() + timeout;

	puts_(&body, "{\"env\":{");
	int first = 1;
	for (const char *const *var = CNI_VARS; *var; var++) {
		const char *v = getenv(*var);
		if (!v)
			continue;
		if (!first)
			puts_(&body, ",");
		first = 0;
		put_json_string(&body, *var, strlen(*var));
		puts_(&body, ":");
		put_json_string(&body, v, strlen(v));
	}
	puts_(&body, "},\"stdin\":");
	put_json_string(&body, conf.data, conf.len);
	puts_(&body, "}");

	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		snprintf(msg, sizeof msg, "podnet-cni: socket: %s", strerror(errno));
		return fail(11, msg);
	}
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	memcpy(addr.sun_path, path, strlen(path)); /* bounded above by sun_path's size */
	double pause = 0.01;
	for (;;) {
		if (connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0)
			break;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN) { /* the agent's listen queue is full: try again until the deadline */
			if (now() >= deadline) {
				snprintf(msg, sizeof msg,
					 "podnet agent at unix://%s did not answer within %g s (connecting: its listen queue is full)",
					 path, timeout);
				return fail(11, msg);
			}
			pause_until(deadline, pause);
			pause = pause < 0.2 ? pause * 2 : 0.25;
			continue;
		}
		snprintf(msg, sizeof msg, "podnet agent is unreachable at unix://%s (%s); is podnet-agent running?", path,
			 strerror(errno));
		return fail(11, msg);
	}

	char head[256];
	snprintf(head, sizeof head,
		 "POST /v1/cni HTTP/1.1\r\nHost: podnet\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		 body.len);
	puts_(&request, head);
	put(&request, body.data, body.len);
	for (size_t sent = 0; sent < request.len;) {
		ssize_t w = send(fd, request.data + sent, request.len - sent, MSG_NOSIGNAL);
		if (w >= 0) {
			sent += (size_t)w;
			continue;
		}
		int ready = (errno == EAGAIN || errno == EINTR) ? wait_fd(fd, POLLOUT, deadline) : -1;
		if (ready == 0) {
			snprintf(msg, sizeof msg, "podnet agent at unix://%s did not answer within %g s (sending the request)",
				 path, timeout);
			return fail(11, msg);
		}
		if (ready < 0) {
			snprintf(msg, sizeof msg, "podnet agent at unix://%s: sending the request: %s", path, strerror(errno));
			return fail(11, msg);
		}
	}
	for (;;) {
		ssize_t r = read(fd, chunk, sizeof chunk);
		if (r > 0) {
			if (reply.len + (size_t)r > MAX_REPLY) {
				snprintf(msg, sizeof msg, "podnet agent at unix://%s sent more than 16 MiB", path);
				return fail(11, msg);
			}
			put(&reply, chunk, (size_t)r);
			continue;
		}
		if (r == 0)
			break;
		int ready = (errno == EAGAIN || errno == EINTR) ? wait_fd(fd, POLLIN, deadline) : -1;
		if (ready == 0) {
			snprintf(msg, sizeof msg, "podnet agent at unix://%s did not answer within %g s", path, timeout);
			return fail(11, msg);
		}
		if (ready < 0) {
			snprintf(msg, sizeof msg, "podnet agent at unix://%s: reading the reply: %s", path, strerror(errno));
			return fail(11, msg);
		}
	}
	close(fd);
	if (reply.len == 0) {
		snprintf(msg, sizeof msg, "podnet agent at unix://%s did not answer: connection closed", path);
		return fail(11, msg);
	}
	puts_(&reply, "");
	int status = 0;
	char *end = memmem(reply.data, reply.len, "\r\n\r\n", 4);
	if (!end || sscanf(reply.data, "HTTP/1.%*d %d", &status) != 1) {
		snprintf(msg, sizeof msg, "podnet agent at unix://%s sent a malformed reply", path);
		return fail(11, msg);
	}
	*end = '\0';
	const char *payload = end + 4;
	size_t payload_len = reply.len - (size_t)(payload - reply.data);
	char *exit_header = strcasestr(reply.data, EXIT_HEADER);
	if (status != 200 || !exit_header) {
		snprintf(msg, sizeof msg, "podnet agent at unix://%s answered HTTP %d to POST /v1/cni: %.300s", path, status,
			 payload);
		return fail(7, msg);
	}
	char *rest;
	long code = strtol(exit_header + strlen(EXIT_HEADER), &rest, 10);
	if (rest == exit_header + strlen(EXIT_HEADER) || code < 0 || code > 255) {
		snprintf(msg, sizeof msg, "podnet agent at unix://%s sent a malformed reply (exit status)", path);
		return fail(11, msg);
	}
	fwrite(payload, 1, payload_len, stdout);
	return (int)code;
}
