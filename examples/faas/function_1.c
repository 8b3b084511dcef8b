/* Layotto's inventory demo, function 1 (id_1): reads `name` from the
 * request (`name=book1`), asks function 2 for its stock through
 * proxy_invoke_service, and answers "There are <n> inventories for <name>." */
#include "proxy_wasm.h"

EXPORT(proxy_get_id) void proxy_get_id(void) { set_buffer(BUFFER_CALL_DATA, "id_1", 4); }

EXPORT(proxy_on_request_body) uint32_t proxy_on_request_body(uint32_t context, uint32_t size, uint32_t end) {
    char *body = 0;
    size_t body_size = 0;
    if (proxy_get_buffer_bytes(BUFFER_REQUEST_BODY, 0, size, &body, &body_size) != STATUS_OK) {
        log_text(LOG_ERROR, "cannot read the request body");
        return ACTION_PAUSE;
    }
    size_t name_size = 0;
    const char *name = query_param(body, body_size, "name", &name_size);
    if (!name) {
        log_text(LOG_ERROR, "param 'name' not found");
        return ACTION_PAUSE;
    }
    char *stock = 0;
    size_t stock_size = 0;
    if (proxy_invoke_service("id_2", 4, "", 0, name, name_size, &stock, &stock_size) != STATUS_OK) {
        log_text(LOG_ERROR, "invoking id_2 failed");
        return ACTION_PAUSE;
    }
    text answer = text_of(64 + stock_size + name_size);
    append(&answer, "There are ", 10);
    append(&answer, stock, stock_size);
    append(&answer, " inventories for ", 17);
    append(&answer, name, name_size);
    append(&answer, ".", 1);
    set_buffer(BUFFER_RESPONSE_BODY, answer.data, answer.size);
    return ACTION_CONTINUE;
}
