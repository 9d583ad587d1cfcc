/* Non-inline wrappers around DPDK's static-inline fast-path functions and
 * thread-local variables, which bindgen cannot bind. Each is one call. */
#ifndef HNV_DPDK_SHIM_H
#define HNV_DPDK_SHIM_H
#include <stdint.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <rte_ring.h>

uint16_t shim_rx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
uint16_t shim_tx_burst(uint16_t port, uint16_t queue, struct rte_mbuf **pkts, uint16_t n);
struct rte_mbuf *shim_pktmbuf_alloc(struct rte_mempool *mp);
int shim_pktmbuf_alloc_bulk(struct rte_mempool *mp, struct rte_mbuf **mbufs, unsigned n);
void shim_pktmbuf_free(struct rte_mbuf *m);
void shim_pktmbuf_free_bulk(struct rte_mbuf **mbufs, unsigned n);
char *shim_pktmbuf_prepend(struct rte_mbuf *m, uint16_t len);
char *shim_pktmbuf_adj(struct rte_mbuf *m, uint16_t len);
char *shim_pktmbuf_append(struct rte_mbuf *m, uint16_t len);
int shim_pktmbuf_trim(struct rte_mbuf *m, uint16_t len);
uint16_t shim_pktmbuf_headroom(const struct rte_mbuf *m);
uint16_t shim_pktmbuf_tailroom(const struct rte_mbuf *m);
int shim_pktmbuf_is_contiguous(const struct rte_mbuf *m);
unsigned shim_lcore_id(void);
int shim_errno(void);
uint64_t shim_rdtsc(void);
uint64_t shim_get_tsc_hz(void);
unsigned shim_ring_enqueue_burst(struct rte_ring *r, void *const *objs, unsigned n);
unsigned shim_ring_dequeue_burst(struct rte_ring *r, void **objs, unsigned n);
#endif
