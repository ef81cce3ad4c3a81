<?php
// Usage: php run.php API_URL KEY SERVICE_ID STEP [ORDER_IDS...]
// Prints one JSON document with what the client saw, for the Python test to check.
require __DIR__ . '/Api.php';

[$script, $url, $key, $service, $step] = array_slice($argv, 0, 5);
$ids = array_map('intval', array_slice($argv, 5));
$api = new Api($url, $key);
$out = [];

if ($step === 'place') {
    $out['balance'] = $api->balance();
    $out['services'] = count($api->services());
    $order = $api->order(['service' => $service, 'link' => 'http://example.com', 'quantity' => 100]);
    $out['order'] = $order->order;
    $out['status'] = $api->status($order->order);
    $out['bad'] = $api->order(['service' => 999999, 'link' => 'http://example.com', 'quantity' => 100]);
} else {
    $out['multi'] = $api->multiStatus($ids);
    $refill = $api->refill($ids[0]);
    $out['refill'] = $refill;
    $out['multiRefill'] = $api->multiRefill($ids);
    $out['refillStatus'] = $api->refillStatus($refill->refill);
    $out['multiRefillStatus'] = $api->multiRefillStatus([$refill->refill, 424242]);
    $out['cancel'] = $api->cancel([$ids[1], 424242]);
}
echo json_encode($out), "\n";
