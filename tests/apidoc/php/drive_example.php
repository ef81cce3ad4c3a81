<?php
// Usage: php drive_example.php EXAMPLE_PHP KEY STEP [ARGS...]
// Drives the Api class of the downloaded example.php (with the endpoint it came with) and prints
// one JSON document of what each method answered, for the Python test to check against the page.
//   place SERVICE_A SERVICE_B: services, balance, two orders, status, multiStatus, a refused order
//   follow ORDER_A ORDER_B:    refill, multiRefill, refillStatus, multiRefillStatus, cancel
//   timeout URL SECONDS:       one call to a server that never answers
[$script, $example, $key, $step] = array_slice($argv, 0, 4);
$args = array_slice($argv, 4);
require $example;

$api = new Api($key);
$out = [];
if ($step === 'place') {
    [$a, $b] = array_map('intval', $args);
    $out['services'] = $api->services();
    $out['balance'] = $api->balance();
    $out['add'] = $api->order(['service' => $a, 'link' => 'https://instagram.com/p/php-a', 'quantity' => 100]);
    $out['add_b'] = $api->order(['service' => $b, 'link' => 'https://instagram.com/p/php-b', 'quantity' => 100]);
    $out['status'] = $api->status($out['add']->order);
    $out['status-multi'] = $api->multiStatus([$out['add']->order, $out['add_b']->order, 424242]);
    $out['refused'] = $api->order(['service' => 999999, 'link' => 'https://instagram.com/p/x', 'quantity' => 100]);
} elseif ($step === 'follow') {
    [$a, $b] = array_map('intval', $args);
    $out['refill'] = $api->refill($a);
    $out['refill-multi'] = $api->multiRefill([$a, $b, 424242]);
    $out['refill-status'] = $api->refillStatus($out['refill']->refill);
    $out['refill-status-multi'] = $api->multiRefillStatus([$out['refill']->refill, 424242]);
    $out['cancel'] = $api->cancel([$b, 424242]);
} elseif ($step === 'timeout') {
    $api->api_url = $args[0];
    $api->timeout = (int) $args[1];
    $started = microtime(true);
    try {
        $api->balance();
        $out['thrown'] = null;
    } catch (RuntimeException $e) {
        $out['thrown'] = $e->getMessage();
    }
    $out['seconds'] = microtime(true) - $started;
}
echo json_encode($out), "\n";
