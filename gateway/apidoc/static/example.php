<?php
/**
 * A client of this panel's API v2 for PHP 7.4 or newer with the curl extension.
 *
 * The class has the methods of the `Api` class SMM panels publish (order, status, multiStatus,
 * services, refill, multiRefill, refillStatus, multiRefillStatus, cancel, balance), so scripts
 * written for one keep working. Put your API key in $api_key below, or pass it in:
 *
 *     require 'example.php';
 *     $api = new Api('YOUR_API_KEY');
 *     $services = $api->services();
 *     $order = $api->order(['service' => 1, 'link' => 'https://instagram.com/p/Cxyz', 'quantity' => 1000]);
 *     if (isset($order->error)) {
 *         exit($order->error . "\n");
 *     }
 *     $status = $api->status($order->order);
 *
 * Every method answers the decoded JSON, as an object (or, like the published class, as an array
 * for multiRefill, multiRefillStatus and cancel). A call the panel refuses answers
 * {"error": "..."} with one of the messages on the API page. When the answer does not arrive
 * (network down, timeout) a RuntimeException is thrown: the call may or may not have been done.
 * To make an order safe to send again, give it a key of your own and send the same key when you
 * retry (see Idempotency on the API page):
 *
 *     $key = bin2hex(random_bytes(16));
 *     $order = $api->order(['service' => 1, 'link' => '...', 'quantity' => 1000, 'idempotency_key' => $key]);
 */

class Api
{
    /** The API's address. */
    public $api_url = 'https://your-panel.example/api/v2';

    /** Your API key. */
    public $api_key = '';

    /** Seconds to wait for an answer. */
    public $timeout = 60;

    public function __construct($api_key = null, $api_url = null)
    {
        if ($api_key !== null) {
            $this->api_key = $api_key;
        }
        if ($api_url !== null) {
            $this->api_url = $api_url;
        }
    }

    /** Add an order: service, link, quantity, and whatever else the service's type needs. */
    public function order($data)
    {
        $post = array_merge(['key' => $this->api_key, 'action' => 'add'], $data);
        return json_decode($this->connect($post));
    }

    /** The status of one order. */
    public function status($order_id)
    {
        return json_decode($this->connect([
            'key' => $this->api_key,
            'action' => 'status',
            'order' => $order_id,
        ]));
    }

    /** The statuses of up to 100 orders. */
    public function multiStatus($order_ids)
    {
        return json_decode($this->connect([
            'key' => $this->api_key,
            'action' => 'status',
            'orders' => implode(',', (array) $order_ids),
        ]));
    }

    /** The services, at your prices. */
    public function services()
    {
        return json_decode($this->connect([
            'key' => $this->api_key,
            'action' => 'services',
        ]));
    }

    /** Ask for a refill of one order. */
    public function refill(int $orderId)
    {
        return json_decode($this->connect([
            'key' => $this->api_key,
            'action' => 'refill',
            'order' => $orderId,
        ]));
    }

    /** Ask for refills of up to 100 orders. */
    public function multiRefill(array $orderIds)
    {
        return json_decode($this->connect([
            'key' => $this->api_key,
            'action' => 'refill',
            'orders' => implode(',', $orderIds),
        ]), true);
    }

    /** The status of one refill. */
    public function refillStatus(int $refillId)
    {
        return json_decode($this->connect([
            'key' => $this->api_key,
            'action' => 'refill_status',
            'refill' => $refillId,
        ]));
    }

    /** The statuses of up to 100 refills. */
    public function multiRefillStatus(array $refillIds)
    {
        return json_decode($this->connect([
            'key' => $this->api_key,
            'action' => 'refill_status',
            'refills' => implode(',', $refillIds),
        ]), true);
    }

    /** Cancel up to 100 orders. */
    public function cancel(array $orderIds)
    {
        return json_decode($this->connect([
            'key' => $this->api_key,
            'action' => 'cancel',
            'orders' => implode(',', $orderIds),
        ]), true);
    }

    /** Your balance. */
    public function balance()
    {
        return json_decode($this->connect([
            'key' => $this->api_key,
            'action' => 'balance',
        ]));
    }

    /** POSTs the parameters form-encoded; the answer's body (always HTTP 200 JSON, errors included). */
    private function connect($post)
    {
        $ch = curl_init($this->api_url);
        curl_setopt_array($ch, [
            CURLOPT_POST => true,
            CURLOPT_POSTFIELDS => http_build_query($post),
            CURLOPT_RETURNTRANSFER => true,
            CURLOPT_HEADER => false,
            CURLOPT_CONNECTTIMEOUT => 15,
            CURLOPT_TIMEOUT => $this->timeout,
            CURLOPT_HTTPHEADER => ['Accept: application/json'],
            CURLOPT_USERAGENT => 'smm-api-client/1.0 (PHP ' . PHP_VERSION . ')',
        ]);
        $result = curl_exec($ch);
        $error = curl_error($ch);
        $code = curl_getinfo($ch, CURLINFO_RESPONSE_CODE);
        unset($ch);
        if ($result === false) {
            throw new RuntimeException('API call failed: ' . $error);
        }
        if ($code !== 200) {
            throw new RuntimeException('API call failed: HTTP ' . $code);
        }
        return $result;
    }
}
