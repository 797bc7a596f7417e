/*
 * podnet-cni: the CNI plugin binary a runtime execs (installed as `podnet` in
 * the CNI bin dir). It does no networking itself: it answers VERSION, and
 * forwards every other call - the CNI_* environment and stdin untouched - to
 * the node's podnet agent (POST /v1/cni on its unix socket), which runs the
 * plugin logic (podnet.cni) and returns what to print and the exit status.
 * Written in C so an exec costs about a millisecond, not an interpreter start.
 *
 * The agent socket is the network configuration's "agentSocket", else
 * /var/run/podnet/podnet.sock. Errors it meets itself (agent down, bad
 * reply) are printed in the CNI error form: code 11 (try again later) or 7.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#define DEFAULT_SOCKET "/var/run/podnet/podnet.sock"
#define CURRENT_VERSION "1.1.0"
#define SUPPORTED_VERSIONS "[\"0.3.0\",\"0.3.1\",\"0.4.0\",\"1.0.0\",\"1.1.0\"]"
#define EXIT_HEADER "Podnet-CNI-Exit:"

static const char *const CNI_VARS[] = {"CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME",
                                       "CNI_ARGS",    "CNI_PATH",        NULL};

struct buf {
	char *data;
	size_t len, cap;
};

static void put(struct buf *b, const char *s, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
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
		} else if (c < 0x20) {
			snprintf(esc, sizeof esc, "\\u%04x", c);
			puts_(b, esc);
		} else {
			put(b, (const char *)&s[i], 1);
		}
	}
	puts_(b, "\"");
}

/* The string value of "key" in a flat scan of the JSON text; 0 if found. */
static int scan_string(const char *json, const char *key, char *out, size_t outlen)
{
	char quoted[64];
	snprintf(quoted, sizeof quoted, "\"%s\"", key);
	const char *p = strstr(json, quoted);
	if (!p)
		return 1;
	p += strlen(quoted);
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p++ != ':')
		return 1;
	while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
		p++;
	if (*p++ != '"')
		return 1;
	const char *start = p;
	while (*p && *p != '"' && *p != '\\')
		p++;
	size_t n = (size_t)(p - start);
	if (*p != '"' || n + 1 > outlen)
		return 1; /* escapes or too long: keep the default */
	memcpy(out, start, n);
	out[n] = '\0';
	return 0;
}

static int fail(const char *version, int code, const char *msg)
{
	struct buf out = {0};
	puts_(&out, "{\"cniVersion\":");
	put_json_string(&out, version, strlen(version));
	char num[32];
	snprintf(num, sizeof num, ",\"code\":%d,\"msg\":", code);
	puts_(&out, num);
	put_json_string(&out, msg, strlen(msg));
	puts_(&out, "}\n");
	fwrite(out.data, 1, out.len, stdout);
	return 1;
}

int main(void)
{
	const char *command = getenv("CNI_COMMAND");
	if (command && strcmp(command, "VERSION") == 0) {
		printf("{\"cniVersion\":\"%s\",\"supportedVersions\":%s}\n", CURRENT_VERSION, SUPPORTED_VERSIONS);
		return 0;
	}
	struct buf conf = {0};
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0)
		put(&conf, chunk, n);
	puts_(&conf, "");

	char version[32] = CURRENT_VERSION;
	scan_string(conf.data, "cniVersion", version, sizeof version);
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)] = DEFAULT_SOCKET;
	scan_string(conf.data, "agentSocket", path, sizeof path);

	struct buf body = {0};
	puts_(&body, "{\"env\":{");
	int first = 1;
	for (const char *const *var = CNI_VARS; *var; var++) {
		const char *value = getenv(*var);
		if (!value)
			continue;
		if (!first)
			puts_(&body, ",");
		first = 0;
		put_json_string(&body, *var, strlen(*var));
		puts_(&body, ":");
		put_json_string(&body, value, strlen(value));
	}
	puts_(&body, "},\"stdin\":");
	put_json_string(&body, conf.data, conf.len);
	puts_(&body, "}");

	char msg[512];
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un addr = {.sun_family = AF_UNIX};
	memcpy(addr.sun_path, path, strlen(path)); /* scan_string bounded it by sun_path's size */
	if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
		snprintf(msg, sizeof msg, "podnet agent is unreachable at unix://%s (%s); is podnet-agent running?", path,
			 strerror(errno));
		return fail(version, 11, msg);
	}
	struct timeval timeout = {.tv_sec = 120};
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);

	struct buf request = {0};
	char head[256];
	snprintf(head, sizeof head,
		 "POST /v1/cni HTTP/1.1\r\nHost: podnet\r\nContent-Type: application/json\r\n"
		 "Content-Length: %zu\r\nConnection: close\r\n\r\n",
		 body.len);
	puts_(&request, head);
	put(&request, body.data, body.len);
	for (size_t sent = 0; sent < request.len;) {
		ssize_t w = write(fd, request.data + sent, request.len - sent);
		if (w < 0) {
			snprintf(msg, sizeof msg, "podnet agent at unix://%s: sending the request: %s", path, strerror(errno));
			return fail(version, 11, msg);
		}
		sent += (size_t)w;
	}
	struct buf reply = {0};
	ssize_t r;
	while ((r = read(fd, chunk, sizeof chunk)) > 0)
		put(&reply, chunk, (size_t)r);
	close(fd);
	if (r < 0 || reply.len == 0) {
		snprintf(msg, sizeof msg, "podnet agent at unix://%s did not answer: %s", path,
			 r < 0 ? strerror(errno) : "connection closed");
		return fail(version, 11, msg);
	}
	int status = 0;
	char *end = strstr(reply.data, "\r\n\r\n");
	if (sscanf(reply.data, "HTTP/1.%*d %d", &status) != 1 || !end) {
		snprintf(msg, sizeof msg, "podnet agent at unix://%s sent a malformed reply", path);
		return fail(version, 11, msg);
	}
	*end = '\0';
	const char *payload = end + 4;
	char *exit_header = strcasestr(reply.data, EXIT_HEADER);
	if (status != 200 || !exit_header) {
		snprintf(msg, sizeof msg, "podnet agent at unix://%s answered HTTP %d to POST /v1/cni: %.300s", path, status,
			 payload);
		return fail(version, 7, msg);
	}
	int code = atoi(exit_header + strlen(EXIT_HEADER));
	fputs(payload, stdout);
	return code;
}
