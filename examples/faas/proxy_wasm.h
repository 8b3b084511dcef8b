/* A minimal proxy-wasm SDK for C, with Layotto's host functions: enough
 * for the functions in this directory. Freestanding (no libc): clang
 * --target=wasm32 with wasm-ld, see build.sh. */
#ifndef LAYOTTO_PROXY_WASM_H
#define LAYOTTO_PROXY_WASM_H

#include <stddef.h>
#include <stdint.h>

#define IMPORT(name) __attribute__((import_module("env"), import_name(#name)))
#define EXPORT(name) __attribute__((export_name(#name)))

enum { STATUS_OK = 0, STATUS_NOT_FOUND = 1 };
enum { ACTION_CONTINUE = 0, ACTION_PAUSE = 1 };
enum { LOG_INFO = 2, LOG_WARN = 3, LOG_ERROR = 4 };
enum {
    BUFFER_REQUEST_BODY = 0,
    BUFFER_RESPONSE_BODY = 1,
    BUFFER_PLUGIN_CONFIGURATION = 7,
    BUFFER_CALL_DATA = 8, /* Layotto: where proxy_get_id writes the id */
};
enum { MAP_REQUEST_HEADERS = 0, MAP_RESPONSE_HEADERS = 2 };

IMPORT(proxy_log) uint32_t proxy_log(uint32_t level, const char *message, size_t size);
IMPORT(proxy_get_buffer_bytes)
uint32_t proxy_get_buffer_bytes(uint32_t type, size_t start, size_t max, char **data, size_t *size);
IMPORT(proxy_set_buffer_bytes)
uint32_t proxy_set_buffer_bytes(uint32_t type, size_t start, size_t size, const char *data, size_t data_size);
IMPORT(proxy_get_header_map_value)
uint32_t proxy_get_header_map_value(uint32_t type, const char *key, size_t key_size, char **value, size_t *value_size);
IMPORT(proxy_add_header_map_value)
uint32_t proxy_add_header_map_value(uint32_t type, const char *key, size_t key_size, const char *value,
                                    size_t value_size);
IMPORT(proxy_send_local_response)
uint32_t proxy_send_local_response(uint32_t status, const char *details, size_t details_size, const char *body,
                                   size_t body_size, const char *headers, size_t headers_size, int32_t grpc_status);
/* Layotto's host functions. */
IMPORT(proxy_get_state)
uint32_t proxy_get_state(const char *store, size_t store_size, const char *key, size_t key_size, char **value,
                         size_t *value_size);
IMPORT(proxy_invoke_service)
uint32_t proxy_invoke_service(const char *id, size_t id_size, const char *method, size_t method_size,
                              const char *param, size_t param_size, char **result, size_t *result_size);
/* layotto-rs's host functions for the other APIs. */
IMPORT(proxy_save_state)
uint32_t proxy_save_state(const char *store, size_t store_size, const char *key, size_t key_size,
                          const char *value, size_t value_size);
IMPORT(proxy_publish_event)
uint32_t proxy_publish_event(const char *pubsub, size_t pubsub_size, const char *topic, size_t topic_size,
                             const char *data, size_t data_size);

/* --- a bump allocator, reset at the start of each request ----------------
 * An instance serves one request at a time and nothing outlives a request,
 * so freeing everything when the next one starts is enough. */
extern unsigned char __heap_base;
static uintptr_t heap_top;

EXPORT(malloc) void *malloc(size_t size) {
    if (!heap_top) heap_top = (uintptr_t)&__heap_base;
    uintptr_t at = (heap_top + 7) & ~(uintptr_t)7;
    uintptr_t end = at + size;
    uintptr_t have = __builtin_wasm_memory_size(0) * 65536;
    if (end > have) {
        size_t pages = (end - have + 65535) / 65536;
        if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) return 0;
    }
    heap_top = end;
    return (void *)at;
}

static void heap_reset(void) { heap_top = (uintptr_t)&__heap_base; }

/* clang may emit calls to these for copies and zeroing. */
void *memcpy(void *dst, const void *src, size_t n) {
    char *d = dst;
    const char *s = src;
    while (n--) *d++ = *s++;
    return dst;
}
void *memset(void *dst, int c, size_t n) {
    char *d = dst;
    while (n--) *d++ = (char)c;
    return dst;
}

static size_t length(const char *s) {
    size_t n = 0;
    while (s[n]) n++;
    return n;
}

static void log_text(uint32_t level, const char *text) { proxy_log(level, text, length(text)); }

static void set_buffer(uint32_t type, const char *data, size_t size) {
    proxy_set_buffer_bytes(type, 0, size, data, size);
}

/* A growing output string on the request's heap. */
typedef struct {
    char *data;
    size_t size;
} text;

static text text_of(size_t capacity) {
    text t = {malloc(capacity), 0};
    return t;
}

static void append(text *t, const char *data, size_t size) {
    memcpy(t->data + t->size, data, size);
    t->size += size;
}

/* The value of `key` in a `k=v&k2=v2` string, or 0. */
static const char *query_param(const char *query, size_t size, const char *key, size_t *value_size) {
    size_t key_size = length(key);
    size_t at = 0;
    while (at < size) {
        size_t end = at;
        while (end < size && query[end] != '&') end++;
        if (end - at > key_size && query[at + key_size] == '=') {
            size_t i = 0;
            while (i < key_size && query[at + i] == key[i]) i++;
            if (i == key_size) {
                *value_size = end - at - key_size - 1;
                return query + at + key_size + 1;
            }
        }
        at = end + 1;
    }
    return 0;
}

/* --- the proxy-wasm exports every function needs -------------------------- */
EXPORT(proxy_abi_version_0_2_0) void proxy_abi_version_0_2_0(void) {}
EXPORT(proxy_on_vm_start) uint32_t proxy_on_vm_start(uint32_t root, uint32_t size) { return 1; }
EXPORT(proxy_on_configure) uint32_t proxy_on_configure(uint32_t root, uint32_t size) { return 1; }
EXPORT(proxy_on_context_create) void proxy_on_context_create(uint32_t context, uint32_t parent) {
    if (parent) heap_reset();
}
EXPORT(proxy_on_request_headers) uint32_t proxy_on_request_headers(uint32_t context, uint32_t headers, uint32_t end) {
    return ACTION_CONTINUE;
}
EXPORT(proxy_on_done) uint32_t proxy_on_done(uint32_t context) { return 1; }
EXPORT(proxy_on_delete) void proxy_on_delete(uint32_t context) {}

#endif
