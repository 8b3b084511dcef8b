/* A test and benchmark function. Its id is FUNCTION_ID and its answers
 * start with PREFIX (both set by build.sh), so two builds are different code.
 * The body chooses what it does:
 *   trap       executes `unreachable`
 *   loop       spins forever (the runtime's deadline stops it)
 *   grow       grows memory until the runtime's cap stops it
 *   save:K=V   saves V under K in state store `state_demo`
 *   publish:T=D  publishes D to topic T of pubsub `pubsub_demo`
 *   local      answers 418 through proxy_send_local_response
 *   pause      stops the request without answering
 *   anything else is echoed back as "PREFIX:<body>", with header x-function. */
#include "proxy_wasm.h"

#ifndef FUNCTION_ID
#define FUNCTION_ID "echo"
#endif
#ifndef PREFIX
#define PREFIX "v1"
#endif

#ifndef NO_ID
EXPORT(proxy_get_id) void proxy_get_id(void) { set_buffer(BUFFER_CALL_DATA, FUNCTION_ID, length(FUNCTION_ID)); }
#endif

static int equals(const char *data, size_t size, const char *word) {
    size_t n = length(word);
    if (size != n) return 0;
    for (size_t i = 0; i < n; i++)
        if (data[i] != word[i]) return 0;
    return 1;
}

/* Whether the body is `<verb>NAME=VALUE`; NAME is 0 when there is no '='. */
static int command(const char *body, size_t size, const char *verb, const char **name, size_t *name_size,
                   const char **value, size_t *value_size) {
    size_t skip = length(verb);
    if (size <= skip || !equals(body, skip, verb)) return 0;
    size_t n = 0;
    while (skip + n < size && body[skip + n] != '=') n++;
    *name = skip + n == size ? 0 : body + skip;
    *name_size = n;
    *value = body + skip + n + 1;
    *value_size = skip + n == size ? 0 : size - skip - n - 1;
    return 1;
}

static volatile uint32_t spins;

EXPORT(proxy_on_request_body) uint32_t proxy_on_request_body(uint32_t context, uint32_t size, uint32_t end) {
    char *body = 0;
    size_t body_size = 0;
    proxy_get_buffer_bytes(BUFFER_REQUEST_BODY, 0, size, &body, &body_size);
    if (equals(body, body_size, "trap")) __builtin_trap();
    if (equals(body, body_size, "loop"))
        for (;;) spins++;
    if (equals(body, body_size, "grow"))
        for (;;)
            if (__builtin_wasm_memory_grow(0, 16) == (size_t)-1) return ACTION_CONTINUE;
    if (equals(body, body_size, "local")) {
        proxy_send_local_response(418, "", 0, "teapot", 6, 0, 0, -1);
        return ACTION_CONTINUE;
    }
    if (equals(body, body_size, "pause")) return ACTION_PAUSE;
    const char *name, *value;
    size_t name_size, value_size;
    if (command(body, body_size, "save:", &name, &name_size, &value, &value_size)) {
        if (!name || proxy_save_state("state_demo", 10, name, name_size, value, value_size) != STATUS_OK)
            return ACTION_PAUSE;
        set_buffer(BUFFER_RESPONSE_BODY, "saved", 5);
        return ACTION_CONTINUE;
    }
    if (command(body, body_size, "publish:", &name, &name_size, &value, &value_size)) {
        if (!name || proxy_publish_event("pubsub_demo", 11, name, name_size, value, value_size) != STATUS_OK)
            return ACTION_PAUSE;
        set_buffer(BUFFER_RESPONSE_BODY, "published", 9);
        return ACTION_CONTINUE;
    }
    text answer = text_of(length(PREFIX) + 1 + body_size);
    append(&answer, PREFIX, length(PREFIX));
    append(&answer, ":", 1);
    append(&answer, body, body_size);
    set_buffer(BUFFER_RESPONSE_BODY, answer.data, answer.size);
    proxy_add_header_map_value(MAP_RESPONSE_HEADERS, "x-function", 10, FUNCTION_ID, length(FUNCTION_ID));
    return ACTION_CONTINUE;
}
