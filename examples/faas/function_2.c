/* Layotto's inventory demo, function 2 (id_2): the body is a book name;
 * answers its stock, read from state store `state_demo`. */
#include "proxy_wasm.h"

EXPORT(proxy_get_id) void proxy_get_id(void) { set_buffer(BUFFER_CALL_DATA, "id_2", 4); }

EXPORT(proxy_on_request_body) uint32_t proxy_on_request_body(uint32_t context, uint32_t size, uint32_t end) {
    char *book = 0;
    size_t book_size = 0;
    if (proxy_get_buffer_bytes(BUFFER_REQUEST_BODY, 0, size, &book, &book_size) != STATUS_OK || !book_size) {
        log_text(LOG_ERROR, "param 'name' not found");
        return ACTION_PAUSE;
    }
    char *stock = 0;
    size_t stock_size = 0;
    if (proxy_get_state("state_demo", 10, book, book_size, &stock, &stock_size) != STATUS_OK) {
        log_text(LOG_ERROR, "get state failed");
        return ACTION_PAUSE;
    }
    set_buffer(BUFFER_RESPONSE_BODY, stock, stock_size);
    return ACTION_CONTINUE;
}
