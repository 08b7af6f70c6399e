/* page.h — the status page served at GET /: daemon/page.html, embedded at build time (the
 * Makefile turns it into a C array with xxd). */
#ifndef ACTIOND_DAEMON_PAGE_H
#define ACTIOND_DAEMON_PAGE_H

/* The bytes of page.html (not NUL-terminated) and their count; names as xxd -n makes them. */
extern const unsigned char daemon_page_html[];
extern const unsigned int daemon_page_html_len;

#endif
