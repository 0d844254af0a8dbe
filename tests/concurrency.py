"""Run one function in several Python threads at once (for thread-safety tests)."""
import threading


def results_from_threads(work, n_threads):
    """``[work(0), ..., work(n_threads - 1)]``, each call in its own thread, all
    started before any is joined; the first exception a thread raised is
    raised here."""
    results, errors = [None] * n_threads, []

    def run(i):
        try:
            results[i] = work(i)
        except Exception as error:  # re-raised below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n_threads)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results
