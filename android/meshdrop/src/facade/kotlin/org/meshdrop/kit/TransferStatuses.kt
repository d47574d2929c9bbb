package org.meshdrop.kit

import kotlinx.coroutines.flow.Flow
import kotlinx.coroutines.flow.flow
import org.meshdrop.ffi.TransferInterface
import org.meshdrop.ffi.TransferStatus

/**
 * This download's status as a [Flow]: where it is now, then each change (a few per second at
 * most), completing after [TransferStatus.Finished] or [TransferStatus.Failed]. A cold flow over
 * `nextStatus`: collect it once per transfer (collectors share one stream of changes).
 */
fun TransferInterface.statuses(): Flow<TransferStatus> = flow {
    while (true) emit(nextStatus() ?: break)
}
